/**
 * The scenarios, each an autocannon run (16 connections) against one target. Scenarios that carry
 * state (a user's refresh token, a sign-in's cookies) give every connection its own closure through
 * autocannon's `setupClient`, and walk multi-request flows with `requests` + setupRequest/onResponse
 * and the per-connection `context`.
 */
import { fork } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import autocannon from 'autocannon';
import { basicAuth, form, SignIn, signInWithFetch, type StepRequest, type StepResponse } from './flow.ts';
import { randomBytes } from 'node:crypto';
import { METER_CLIENT, SERVICE_CLIENT, WEB_CLIENT, type Credentials } from './seed.ts';
import type { CpuUse } from './cpu.ts';
import { targetRss, type RunningTarget } from './targets.ts';
import { TYPESCRIPT_LOADER } from '../../test/support/processes.ts';

export const SCENARIOS = ['discovery', 'jwks', 'client-credentials', 'usage', 'refresh', 'introspection', 'userinfo', 'sign-in'] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

export const SCENARIO_LABELS: Record<ScenarioName, string> = {
  discovery: 'discovery',
  jwks: 'JWKS',
  'client-credentials': 'client credentials (JWT)',
  usage: 'usage recording (POST /api/usage)',
  refresh: 'refresh-token rotation',
  introspection: 'introspection',
  userinfo: 'userinfo',
  'sign-in': 'full sign-in',
};

export const CONNECTIONS = 16;
const API_RESOURCE = 'urn:jobswipe:api';
/** The low-rate probe of a cheap endpoint while sign-ins run (and before, idle). */
const PROBE_RATE = 50;

/** A signed-in user's current tokens; the refresh scenario moves them on. */
export interface UserState {
  email: string;
  /** The user's subject, from the ID token of the sign-in. */
  sub: string | undefined;
  refreshToken: string;
  accessToken: string;
  /** A refresh failed: the token may be spent, the user is signed in again before the next scenario. */
  broken: boolean;
  /** A refresh is under way (its answer, and the next token, may be lost when the run stops). */
  refreshing?: boolean;
}

export interface Measurement {
  /** Successful responses (for sign-in: completed sign-ins) per second. */
  rate: number;
  /** Every request per second (sign-in: all the steps). */
  requestRate: number;
  /** Latency in ms, of a request (for sign-in: of a whole sign-in). */
  p50: number;
  p99: number;
  errors: number;
  /** A sample of what went wrong. */
  errorSample?: string | undefined;
  /** RSS of the target's process(es) right after the run, bytes. */
  rss: number[];
  /** How long the run was, seconds. */
  seconds: number;
  /** CPU per request by where it went, and the machine's busy share (Linux; cpu.ts). */
  cpu?: CpuUse | undefined;
  /** sign-in only: p99 (ms) of a cheap endpoint at a low rate, idle and during the sign-ins. */
  probe?: { endpoint: string; idleP99: number; loadedP99: number } | undefined;
}

export interface TargetState {
  target: RunningTarget;
  users: UserState[];
}

const running = new Set<autocannon.Instance>();
const probes = new Set<ReturnType<typeof fork>>();

/** Stops every load generator now (Ctrl-C). */
export function stopLoad(): void {
  for (const instance of running) instance.stop();
  for (const probe of probes) probe.kill('SIGKILL');
}

function cannon(options: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error, result) => {
      running.delete(instance);
      if (error) reject(error as Error);
      else resolve(result);
    });
    running.add(instance);
  });
}

let addressCounter = Math.floor(Math.random() * 1_000_000);
/** A distinct client address for each sign-in (the per-address sign-in limit stays as it is). */
export function nextAddress(): string {
  addressCounter = (addressCounter + 1) % 16_000_000;
  const n = addressCounter + 1;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** Signs every seeded user in (four at a time) and keeps their tokens. */
export async function signInUsers(target: RunningTarget, credentials: Credentials): Promise<UserState[]> {
  const users: UserState[] = [];
  const queue = credentials.seed.users.map((user) => user.email);
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let email = queue.shift(); email; email = queue.shift()) {
        users.push(await signInUser(target, credentials, email));
      }
    }),
  );
  return users.sort((a, b) => a.email.localeCompare(b.email, 'en', { numeric: true }));
}

async function signInUser(target: RunningTarget, credentials: Credentials, email: string): Promise<UserState> {
  const tokens = await signInWithFetch(target.base, target.endpoints, { email, password: credentials.password }, credentials.webSecret, nextAddress());
  if (!tokens.refresh_token) throw new Error(`${target.name}: the sign-in of ${email} gave no refresh token`);
  return { email, sub: subjectOf(tokens.id_token), refreshToken: tokens.refresh_token, accessToken: tokens.access_token, broken: false };
}

/** The `sub` of an ID token (read, not verified: the harness only needs to name the user back). */
function subjectOf(idToken: string | undefined): string | undefined {
  const payload = idToken?.split('.')[1];
  if (!payload) return undefined;
  const sub = (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown }).sub;
  return typeof sub === 'string' ? sub : undefined;
}

/** Signs users whose refresh chain broke in again (four at a time), so the next scenario starts from working tokens. */
export async function repairUsers(state: TargetState, credentials: Credentials): Promise<number> {
  const broken = [...state.users.entries()].filter(([, user]) => user.broken);
  const count = broken.length;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let entry = broken.shift(); entry; entry = broken.shift()) {
        const [index, user] = entry;
        state.users[index] = await signInUser(state.target, credentials, user.email);
      }
    }),
  );
  return count;
}

const lowerCaseHeaders = (headers: Record<string, unknown>): StepResponse['headers'] =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value as string | string[]]));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

/** Counts failures and keeps the first few reasons. */
class Failures {
  count = 0;
  private readonly samples = new Map<string, number>();

  add(reason: string): void {
    this.count += 1;
    const key = reason.slice(0, 160);
    if (this.samples.size < 5 || this.samples.has(key)) this.samples.set(key, (this.samples.get(key) ?? 0) + 1);
  }

  sample(): string | undefined {
    return this.samples.size === 0 ? undefined : [...this.samples].map(([reason, count]) => `${count}x ${reason}`).join('; ');
  }
}

type Request = autocannon.Request;

const toRequest = (base: Request, step: StepRequest): Request => ({
  ...base,
  method: step.method,
  path: step.path,
  headers: step.headers,
  body: step.body ?? '',
});

interface RunOptions {
  duration: number;
  connections?: number;
  /** The sign-in runs at least this long (a sign-in waits for bcrypt: a short run would finish none). */
  signInSeconds?: number;
}

function options(target: RunningTarget, run: RunOptions, extra: Partial<autocannon.Options>): autocannon.Options {
  return {
    url: target.base,
    connections: run.connections ?? CONNECTIONS,
    duration: run.duration,
    pipelining: 1,
    timeout: 20,
    ...extra,
  };
}

/** A measurement from autocannon's own counters: every response should be a 2xx. */
function fromResult(result: autocannon.Result, target: RunningTarget, failures: Failures): Measurement {
  // Our own checks (a 2xx with the wrong body) count against the rate; autocannon's against nothing else.
  const wrongBodies = failures.count;
  const bad = result.non2xx + result.errors + wrongBodies;
  if (result.non2xx > 0) failures.add(`${result.non2xx} non-2xx responses (${Object.keys(result.statusCodeStats ?? {}).join(', ')})`);
  if (result.errors > 0) failures.add(`${result.errors} connection errors (${result.timeouts} timeouts)`);
  return {
    rate: Math.max(0, result['2xx'] - wrongBodies) / result.duration,
    requestRate: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: bad,
    errorSample: failures.sample(),
    rss: targetRss(target),
    seconds: result.duration,
  };
}

/** Runs one scenario against one target for `run.duration` seconds. */
export async function runScenario(scenario: ScenarioName, state: TargetState, credentials: Credentials, run: RunOptions): Promise<Measurement> {
  const { target } = state;
  const failures = new Failures();
  const { endpoints } = target;
  switch (scenario) {
    case 'discovery':
    case 'jwks': {
      const path = scenario === 'discovery' ? endpoints.discovery : endpoints.jwks;
      return fromResult(await cannon(options(target, run, { requests: [{ method: 'GET', path }] })), target, failures);
    }
    case 'client-credentials': {
      const request: Request = {
        method: 'POST',
        path: endpoints.token,
        headers: { authorization: basicAuth(SERVICE_CLIENT, credentials.serviceSecret), 'content-type': 'application/x-www-form-urlencoded' },
        body: form({ grant_type: 'client_credentials', scope: 'api:read', resource: API_RESOURCE }),
        onResponse: (status, body) => {
          // A JWT access token: three base64url parts.
          if (status === 200 && !/"access_token":"[\w-]+\.[\w-]+\.[\w-]+"/.test(body)) failures.add('the access token is not a JWT');
        },
      };
      return fromResult(await cannon(options(target, run, { requests: [request] })), target, failures);
    }
    case 'usage':
      return runUsage(state, credentials, run, failures);
    case 'refresh': {
      const result = await cannon(options(target, run, { setupClient: perUser(state, (user) => refreshRequest(user, target, credentials, failures)) }));
      // A refresh whose answer never came (the run stopped first) may have spent the token: sign that user in again.
      for (const user of state.users) {
        if (user.refreshing) user.broken = true;
        user.refreshing = false;
      }
      return fromResult(result, target, failures);
    }
    case 'introspection':
      return fromResult(
        await cannon(
          options(target, run, {
            setupClient: perUser(state, (user) => ({
              method: 'POST',
              path: endpoints.introspection,
              headers: { authorization: basicAuth(WEB_CLIENT, credentials.webSecret), 'content-type': 'application/x-www-form-urlencoded' },
              body: form({ token: user.accessToken, token_type_hint: 'access_token' }),
              onResponse: (status, body) => {
                if (status === 200 && !body.includes('"active":true')) failures.add(`inactive token: ${body.slice(0, 80)}`);
              },
            })),
          }),
        ),
        target,
        failures,
      );
    case 'userinfo':
      return fromResult(
        await cannon(
          options(target, run, {
            setupClient: perUser(state, (user) => ({ method: 'GET', path: endpoints.userinfo, headers: { authorization: `Bearer ${user.accessToken}` } })),
          }),
        ),
        target,
        failures,
      );
    case 'sign-in':
      return runSignIns(state, credentials, run, failures);
  }
}

/** A client-credentials access token of the usage recorder, for the whole run (it lives 15 minutes). */
async function meterToken(target: RunningTarget, credentials: Credentials): Promise<string> {
  const response = await fetch(`${target.base}${target.endpoints.token}`, {
    method: 'POST',
    headers: { authorization: basicAuth(METER_CLIENT, credentials.meterSecret), 'content-type': 'application/x-www-form-urlencoded' },
    body: form({ grant_type: 'client_credentials', scope: 'usage:write', resource: API_RESOURCE }),
  });
  const body = (await response.json()) as { access_token?: string; scope?: string };
  if (!response.ok || !body.access_token || body.scope !== 'usage:write') throw new Error(`${target.name}: no usage:write token (${response.status})`);
  return body.access_token;
}

/**
 * Usage recording (ours only): each connection records 1 application for its user, every request with
 * a new idempotency key, against a plan whose limit no run reaches. Every answer should be 201.
 */
async function runUsage(state: TargetState, credentials: Credentials, run: RunOptions, failures: Failures): Promise<Measurement> {
  const { target } = state;
  const token = await meterToken(target, credentials);
  // Keys unique across runs and rounds: a repeated key would be answered 200 without recording.
  const runId = randomBytes(6).toString('base64url');
  let connection = 0;
  const setupClient = (client: autocannon.Client) => {
    const user = state.users[connection % state.users.length];
    const prefix = `${runId}-${connection}-`;
    connection += 1;
    if (!user?.sub) throw new Error('no signed-in users with a sub');
    let sent = 0;
    client.setRequests([
      {
        method: 'POST',
        path: '/api/usage',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        setupRequest: (request: Request) => {
          sent += 1;
          return { ...request, body: JSON.stringify({ sub: user.sub, meter: 'applications', quantity: 1, idempotency_key: `${prefix}${sent}` }) };
        },
        // Non-2xx answers count in autocannon's own counters; a 200 (a key repeated) recorded nothing.
        onResponse: (status: number, body: string) => {
          if (status >= 200 && status < 300 && (status !== 201 || !body.includes('"used":'))) failures.add(`usage: ${status} ${body.slice(0, 120)}`);
        },
      },
    ]);
  };
  return fromResult(await cannon(options(target, run, { setupClient })), target, failures);
}

/** setupClient: connection i acts for user i (16 connections, 16 users), with its own request loop. */
function perUser(state: TargetState, request: (user: UserState) => Request) {
  let connection = 0;
  return (client: autocannon.Client) => {
    const index = connection % state.users.length;
    connection += 1;
    const user = state.users[index];
    if (!user) throw new Error('no signed-in users');
    client.setRequests([request(user)]);
  };
}

/** One user refreshing in a loop: each request sends the token the previous response gave. */
function refreshRequest(user: UserState, target: RunningTarget, credentials: Credentials, failures: Failures): Request {
  return {
    method: 'POST',
    path: target.endpoints.token,
    headers: { authorization: basicAuth(WEB_CLIENT, credentials.webSecret), 'content-type': 'application/x-www-form-urlencoded' },
    setupRequest: (request) => {
      user.refreshing = true;
      return { ...request, body: form({ grant_type: 'refresh_token', refresh_token: user.refreshToken }) };
    },
    onResponse: (status, body) => {
      user.refreshing = false;
      if (status !== 200) {
        user.broken = true;
        return;
      }
      try {
        const tokens = JSON.parse(body) as { refresh_token?: string; access_token?: string };
        if (!tokens.refresh_token || !tokens.access_token) throw new Error('no refresh token');
        user.refreshToken = tokens.refresh_token;
        user.accessToken = tokens.access_token;
      } catch (error) {
        user.broken = true;
        failures.add(`refresh response: ${(error as Error).message}`);
      }
    },
  };
}

const SIGN_IN_SLOTS = 12;

interface SignInContext {
  flow?: SignIn;
  pending?: StepRequest | undefined;
  started?: number;
}

/**
 * Full sign-ins, each a fresh browser: authorize → login page → login POST (CSRF token and cookies)
 * → redirects → code → token. A connection's `requests` are SIGN_IN_SLOTS generic slots: slot 0
 * starts a sign-in, every later slot sends what the previous response called for, and a slot with
 * nothing to send ends the loop (autocannon then starts again at slot 0 with a fresh context).
 */
async function runSignIns(state: TargetState, credentials: Credentials, run: RunOptions, failures: Failures): Promise<Measurement> {
  const { target } = state;
  const durations: number[] = [];
  let completed = 0;
  /** When the first sign-in completed: from then on every connection is mid-sign-in (steady state). */
  let firstCompleted: number | undefined;
  let connection = 0;
  const onResponse = (status: number, body: string, context: object, headers: Request['headers']) => {
    const ctx = context as SignInContext;
    if (!ctx.flow) return;
    const next = ctx.flow.next({ status, body, headers: lowerCaseHeaders(headers ?? {}) });
    if (next) {
      ctx.pending = next;
    } else if (ctx.flow.done) {
      completed += 1;
      firstCompleted ??= performance.now();
      durations.push(performance.now() - (ctx.started ?? 0));
    } else {
      failures.add(ctx.flow.failure ?? 'sign-in stopped');
    }
  };
  const setupClient = (client: autocannon.Client) => {
    const user = state.users[connection % state.users.length] ?? state.users[0];
    connection += 1;
    if (!user) throw new Error('no users');
    const slots: Request[] = Array.from({ length: SIGN_IN_SLOTS }, (_, slot) => ({
      method: 'GET',
      path: '/',
      onResponse,
      setupRequest: (request: Request, context: object) => {
        const ctx = context as SignInContext;
        if (slot === 0) {
          ctx.flow = new SignIn(target.endpoints, { email: user.email, password: credentials.password }, credentials.webSecret, nextAddress());
          ctx.started = performance.now();
          return toRequest(request, ctx.flow.first());
        }
        const pending = ctx.pending;
        ctx.pending = undefined;
        // Nothing to send: the sign-in is over (or its last response never came): start again.
        return pending ? toRequest(request, pending) : (undefined as unknown as Request);
      },
    }));
    client.setRequests(slots);
  };

  const seconds = Math.max(run.duration, run.signInSeconds ?? 0);
  run = { ...run, duration: seconds };
  const probeSeconds = Math.max(1, Math.min(10, seconds - 2));
  const probeEndpoint = target.endpoints.discovery;
  const idle = await probe(`${target.base}${probeEndpoint}`, probeSeconds);
  const loadStarted = performance.now();
  const load = cannon(options(target, run, { setupClient }));
  await sleep(Math.min(1_000, (run.duration * 1000) / 4));
  const loaded = await probe(`${target.base}${probeEndpoint}`, probeSeconds);
  const result = await load;
  durations.sort((a, b) => a - b);
  if (result.errors > 0) failures.add(`${result.errors} connection errors (${result.timeouts} timeouts)`);
  return {
    rate: signInRate(completed, firstCompleted, loadStarted, result.duration),
    requestRate: result.requests.total / result.duration,
    p50: percentile(durations, 50),
    p99: percentile(durations, 99),
    errors: failures.count + result.errors,
    errorSample: failures.sample(),
    rss: targetRss(target),
    seconds: result.duration,
    probe: { endpoint: probeEndpoint, idleP99: idle.p99, loadedP99: loaded.p99 },
  };
}

/**
 * Completed sign-ins per second in the steady state. All connections start a sign-in at once and the
 * first ones complete only after a whole sign-in's latency (seconds when they queue for bcrypt), so
 * completions / duration would understate the rate by that latency over the duration: the count
 * starts at the first completion instead.
 */
export function signInRate(completed: number, firstCompleted: number | undefined, started: number, seconds: number): number {
  const end = started + seconds * 1000;
  if (completed < 3 || firstCompleted === undefined || end - firstCompleted < 1000) return completed / seconds;
  return (completed - 1) / ((end - firstCompleted) / 1000);
}

interface ProbeResult {
  p50: number;
  p99: number;
  requests: number;
  errors: number;
}

/**
 * The probe runs in its own process (idp/bench/probe.ts), so the sign-in driver's work in this
 * process cannot delay its measurements.
 */
function probe(url: string, seconds: number): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const child = fork(new URL('./probe.ts', import.meta.url).pathname, [url, String(seconds), String(PROBE_RATE)], {
      execArgv: ['--import', TYPESCRIPT_LOADER],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    probes.add(child);
    let answer: ProbeResult | undefined;
    child.on('message', (message) => (answer = message as ProbeResult));
    child.on('error', reject);
    child.on('exit', (code) => {
      probes.delete(child);
      if (answer) resolve(answer);
      else reject(new Error(`the probe exited (${code}) without a result`));
    });
  });
}
