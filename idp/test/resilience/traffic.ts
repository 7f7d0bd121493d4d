import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CookieJar } from 'tough-cookie';
import { formAction, hiddenField } from '../../../test/support/browser.ts';
import { CALLBACK, USERS, WEB_SECRET, WORKER_SECRET } from './cluster.ts';

/**
 * Mixed client traffic, as the resilience suites drive it: discovery, client credentials, refresh-token
 * rotation, and sign-ins through the login form, each from its own address (X-Forwarded-For, the
 * providers trust the loopback proxy). Every request is timed and classified; every token answer is
 * kept so the suites can look for what it promised in the database.
 */

export type Kind = 'discovery' | 'client_credentials' | 'refresh' | 'signin' | 'code';

/**
 * ok: 2xx/3xx. unavailable: a clear refusal (503 with OAuth `temporarily_unavailable` JSON or an
 * error page, or a redirect to the client with error=temporarily_unavailable). server_error: 500 or
 * `server_error`. lost: the balancer's 502 for a POST whose process died under it. timeout/network:
 * no answer. refused: any other 4xx (what it was is in `detail`).
 */
export type Outcome = 'ok' | 'unavailable' | 'server_error' | 'lost' | 'timeout' | 'network' | 'refused';

export interface Sample {
  kind: Kind;
  method: string;
  path: string;
  status: number;
  outcome: Outcome;
  /** ms since the traffic started. */
  at: number;
  ms: number;
  detail?: string;
}

/** A request that has taken this long counts as hanging (and is abandoned a little later). */
export const HANG_MS = 5_000;
const ABANDON_MS = 10_000;

export interface Workers {
  discovery: number;
  client_credentials: number;
  refresh: number;
  signin: number;
}

interface Chain {
  /** One per sign-in: the grant its refresh tokens belong to. */
  id: number;
  token: string;
  /** The last attempt got no clear answer (503, lost, timeout): the token may or may not have been used. */
  uncertain: boolean;
  /** The outcomes of the attempts with this token (outcome@ms), for failure messages. */
  attempts: string[];
}

interface Answer {
  status: number;
  headers: Headers;
  body: string;
  outcome: Outcome;
}

const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
const b64url = (bytes: Buffer) => bytes.toString('base64url');

let addresses = 0;
/**
 * A fresh client address from 198.18.0.0/15 (RFC 2544): one per sign-in, and one per token worker.
 * The failed-client-authentication limit (5 per address) takes its points before the secret is
 * checked, and each process admits up to 4 of an address's requests at once: with two processes, one
 * address sending 8 concurrent token requests can refuse itself with 429. The workers stand for
 * separate client instances, each with its own address.
 */
function nextAddress(): string {
  addresses += 1;
  return `198.${18 + Math.floor(addresses / 65_000)}.${Math.floor(addresses / 250) % 256}.${(addresses % 250) + 1}`;
}

function classify(status: number, headers: Headers, body: string): { outcome: Outcome; detail?: string } {
  const location = headers.get('location');
  if (status >= 300 && status < 400 && location) {
    const error = new URL(location, 'http://x').searchParams.get('error');
    if (error === 'temporarily_unavailable') return { outcome: 'unavailable', detail: 'redirect' };
    if (error === 'server_error') return { outcome: 'server_error', detail: 'redirect' };
    if (error) return { outcome: 'refused', detail: `redirect ${error}` };
    return { outcome: 'ok' };
  }
  if (status < 400) return { outcome: 'ok' };
  if (status === 502 && headers.get('x-balancer')) return { outcome: 'lost', detail: headers.get('x-balancer') ?? '' };
  let error: string | undefined;
  if ((headers.get('content-type') ?? '').includes('json')) {
    try {
      error = (JSON.parse(body) as { error?: string }).error;
    } catch {
      error = 'unparsable JSON';
    }
  }
  if (status >= 500 && status !== 503) return { outcome: 'server_error', detail: `${status} ${error ?? body.slice(0, 80)}` };
  if (error === 'server_error') return { outcome: 'server_error', detail: `${status} server_error` };
  if (status === 503) {
    const clear = error === 'temporarily_unavailable' || (error === undefined && /html|text\/plain|problem/.test(headers.get('content-type') ?? ''));
    return clear ? { outcome: 'unavailable' } : { outcome: 'refused', detail: `503 ${error ?? headers.get('content-type')}` };
  }
  return { outcome: 'refused', detail: `${status} ${error ?? ''}`.trim() };
}

export class Traffic {
  readonly samples: Sample[] = [];
  /** 200 token answers, by the request that got them. */
  readonly answered = { client_credentials: 0, code: 0, refresh: 0, login: 0 };
  /** Every refresh token a 200 answer handed out, with the chain (sign-in) it belongs to. */
  readonly refreshTokens: Array<{ token: string; chain: number }> = [];
  /**
   * Refresh chains that ended with invalid_grant, with the outcomes of the attempts with the token
   * that was refused (`lost@ms`: the process died with the request, which may have rotated the token).
   */
  readonly brokenChains: Array<{ chain: number; detail: string; attempts: string[] }> = [];
  private chainIds = 0;
  private readonly chains: Chain[] = [];
  private readonly started = performance.now();
  private running = false;
  private loops: Array<Promise<void>> = [];

  private readonly issuer: string;
  private readonly workers: Workers;
  /** The least time between the starts of one worker's operations; 0: as fast as they are answered. */
  private readonly periodMs: number;

  constructor(issuer: string, workers: Workers, periodMs = 0) {
    this.issuer = issuer;
    this.workers = workers;
    this.periodMs = periodMs;
  }

  now(): number {
    return performance.now() - this.started;
  }

  /** Sign-ins until `count` refresh chains exist, before the traffic starts. */
  async prepareChains(count: number): Promise<void> {
    for (let attempt = 0; this.chains.length < count && attempt < count * 3; attempt += 1) {
      await Promise.all([this.signIn(), this.signIn()]);
    }
    if (this.chains.length < count) throw new Error(`only ${this.chains.length} of ${count} sign-ins succeeded: ${JSON.stringify(this.samples.filter((s) => s.outcome !== 'ok').slice(0, 5))}`);
  }

  /** Operations finished per worker kind (a sign-in is one, whatever its number of requests). */
  readonly operations: Record<keyof Workers, number> = { discovery: 0, client_credentials: 0, refresh: 0, signin: 0 };

  /**
   * Starts the workers. `periodMs` is the least time between the starts of one worker's operations
   * (0: as fast as they are answered), one figure for all or one per kind.
   */
  start(periodMs: number | Record<keyof Workers, number> = this.periodMs): void {
    const periodOf = (kind: keyof Workers) => (typeof periodMs === 'number' ? periodMs : periodMs[kind]);
    this.running = true;
    const loop = async (kind: keyof Workers, operation: () => Promise<unknown>) => {
      while (this.running) {
        const began = performance.now();
        await operation();
        this.operations[kind] += 1;
        const wait = periodOf(kind) - (performance.now() - began);
        if (wait > 0 && this.running) await sleep(wait);
      }
    };
    for (let index = 0; index < this.workers.discovery; index += 1) this.loops.push(loop('discovery', () => this.discovery()));
    // Each token worker is a client instance with an address of its own (see nextAddress).
    for (let index = 0; index < this.workers.client_credentials; index += 1) {
      const ip = nextAddress();
      this.loops.push(loop('client_credentials', () => this.clientCredentials(ip)));
    }
    for (let index = 0; index < this.workers.refresh; index += 1) {
      const ip = nextAddress();
      this.loops.push(loop('refresh', () => this.refresh(ip)));
    }
    for (let index = 0; index < this.workers.signin; index += 1) this.loops.push(loop('signin', () => this.signIn()));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops.splice(0));
  }

  private async call(kind: Kind, url: string, init: { method?: string; headers?: Record<string, string>; form?: Record<string, string> } = {}): Promise<Answer> {
    const method = init.method ?? (init.form ? 'POST' : 'GET');
    const headers: Record<string, string> = { ...init.headers };
    let body: string | undefined;
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(init.form).toString();
    }
    const at = this.now();
    const began = performance.now();
    const path = new URL(url).pathname.replace(/\/[A-Za-z0-9_-]{16,}(?=\/|$)/g, '/:id');
    let answer: Answer;
    try {
      const response = await fetch(url, { method, headers, redirect: 'manual', signal: AbortSignal.timeout(ABANDON_MS), ...(body === undefined ? {} : { body }) });
      const text = await response.text();
      const { outcome, detail } = classify(response.status, response.headers, text);
      answer = { status: response.status, headers: response.headers, body: text, outcome };
      this.samples.push({ kind, method, path, status: response.status, outcome, at, ms: performance.now() - began, ...(detail ? { detail } : {}) });
    } catch (error) {
      const timedOut = (error as Error).name === 'TimeoutError';
      answer = { status: 0, headers: new Headers(), body: '', outcome: timedOut ? 'timeout' : 'network' };
      this.samples.push({ kind, method, path, status: 0, outcome: answer.outcome, at, ms: performance.now() - began, detail: String((error as Error).cause ?? error) });
    }
    return answer;
  }

  async discovery(): Promise<void> {
    await this.call('discovery', `${this.issuer}/.well-known/openid-configuration`);
  }

  async clientCredentials(ip: string): Promise<void> {
    const answer = await this.call('client_credentials', `${this.issuer}/token`, {
      headers: { authorization: basic('worker', WORKER_SECRET), 'x-forwarded-for': ip },
      form: { grant_type: 'client_credentials', scope: 'api:read' },
    });
    if (answer.status === 200) this.answered.client_credentials += 1;
  }

  async refresh(ip: string): Promise<void> {
    const chain = this.chains.shift();
    if (!chain) {
      await sleep(50);
      return;
    }
    const at = Math.round(this.now());
    const answer = await this.call('refresh', `${this.issuer}/token`, {
      headers: { authorization: basic('web', WEB_SECRET), 'x-forwarded-for': ip },
      form: { grant_type: 'refresh_token', refresh_token: chain.token },
    });
    if (answer.status === 200) {
      const token = (JSON.parse(answer.body) as { refresh_token: string }).refresh_token;
      this.answered.refresh += 1;
      this.refreshTokens.push({ token, chain: chain.id });
      this.chains.push({ id: chain.id, token, uncertain: false, attempts: [] });
    } else if (answer.outcome === 'refused') {
      this.brokenChains.push({ chain: chain.id, detail: `${answer.status} ${answer.body.slice(0, 120)}`, attempts: [...chain.attempts, `${answer.status}@${at}`] });
    } else {
      // No clear answer: the client tries the same token again later.
      this.chains.push({ ...chain, uncertain: true, attempts: [...chain.attempts, `${answer.outcome}@${at}`] });
    }
  }

  /** One sign-in from a fresh address and browser: authorize, login form, code exchange. */
  async signIn(): Promise<void> {
    const jar = new CookieJar();
    const ip = nextAddress();
    const user = USERS[Math.floor(Math.random() * USERS.length)]!;
    const verifier = b64url(randomBytes(32));
    const state = b64url(randomBytes(12));
    const authorize = new URL(`${this.issuer}/auth`);
    authorize.search = new URLSearchParams({
      client_id: 'web',
      response_type: 'code',
      redirect_uri: CALLBACK,
      scope: 'openid offline_access',
      prompt: 'consent',
      code_challenge: b64url(createHash('sha256').update(verifier).digest()),
      code_challenge_method: 'S256',
      state,
      nonce: b64url(randomBytes(12)),
    }).toString();
    const page = async (url: string, form?: Record<string, string>) => {
      const cookie = await jar.getCookieString(url);
      const answer = await this.call('signin', url, { headers: { 'x-forwarded-for': ip, ...(cookie ? { cookie } : {}) }, ...(form ? { form } : {}) });
      for (const setCookie of answer.headers.getSetCookie()) await jar.setCookie(setCookie, url);
      return answer;
    };
    let url = authorize.toString();
    let answer = await page(url);
    let code: string | undefined;
    for (let step = 0; step < 12 && answer.outcome === 'ok'; step += 1) {
      const location = answer.headers.get('location');
      if (location) {
        const next = new URL(location, url);
        if (next.origin + next.pathname === CALLBACK) {
          code = next.searchParams.get('code') ?? undefined;
          break;
        }
        url = next.toString();
        answer = await page(url);
      } else if (answer.body.includes('name="password"')) {
        url = formAction(answer.body, this.issuer);
        answer = await page(url, { _csrf: hiddenField(answer.body, '_csrf'), email: user.email, password: user.password });
        if (answer.outcome === 'ok') this.answered.login += 1;
      } else if (answer.body.includes('name="decision"')) {
        url = formAction(answer.body, this.issuer);
        answer = await page(url, { _csrf: hiddenField(answer.body, '_csrf'), decision: 'allow' });
      } else {
        break;
      }
    }
    if (!code) return;
    const exchanged = await this.call('code', `${this.issuer}/token`, {
      headers: { authorization: basic('web', WEB_SECRET), 'x-forwarded-for': ip },
      form: { grant_type: 'authorization_code', code, redirect_uri: CALLBACK, code_verifier: verifier },
    });
    if (exchanged.status !== 200) return;
    const token = (JSON.parse(exchanged.body) as { refresh_token?: string }).refresh_token;
    if (!token) throw new Error('a sign-in with offline_access got no refresh token');
    this.answered.code += 1;
    const id = (this.chainIds += 1);
    this.refreshTokens.push({ token, chain: id });
    this.chains.push({ id, token, uncertain: false, attempts: [] });
    // Enough chains: the oldest are let go (their tokens stay valid and are still checked).
    if (this.chains.length > 64) this.chains.shift();
  }

  /** Figures over the samples taken in [from, to) ms. */
  summary(from = 0, to = Number.POSITIVE_INFINITY) {
    const window = this.samples.filter((sample) => sample.at >= from && sample.at < to);
    const count = (outcome: Outcome) => window.filter((sample) => sample.outcome === outcome).length;
    const byKind: Record<string, number> = {};
    for (const sample of window) byKind[sample.kind] = (byKind[sample.kind] ?? 0) + 1;
    const latencies = window.map((sample) => sample.ms).sort((a, b) => a - b);
    const okByKind: Record<string, number> = {};
    const unavailableByKind: Record<string, number> = {};
    for (const sample of window) {
      if (sample.outcome === 'ok') okByKind[sample.kind] = (okByKind[sample.kind] ?? 0) + 1;
      if (sample.outcome === 'unavailable') unavailableByKind[sample.kind] = (unavailableByKind[sample.kind] ?? 0) + 1;
    }
    return {
      requests: window.length,
      ok: count('ok'),
      unavailable: count('unavailable'),
      serverErrors: count('server_error'),
      lost: count('lost'),
      timeouts: count('timeout'),
      network: count('network'),
      refused: count('refused'),
      over5s: window.filter((sample) => sample.ms > HANG_MS).length,
      maxMs: Math.round(latencies.at(-1) ?? 0),
      /** The three slowest requests (kind, method, path, status, start in ms since the traffic started, duration). */
      slowest: [...window]
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 3)
        .map((sample) => `${sample.kind} ${sample.method} ${sample.path} ${sample.status} at ${Math.round(sample.at)} ms: ${Math.round(sample.ms)} ms`),
      p99Ms: Math.round(latencies[Math.floor(latencies.length * 0.99)] ?? 0),
      byKind,
      okByKind,
      unavailableByKind,
    };
  }

  /** The samples that are neither ok nor a clear refusal, for failure messages. */
  problems(from = 0, to = Number.POSITIVE_INFINITY): Sample[] {
    return this.samples.filter((sample) => sample.at >= from && sample.at < to && (sample.outcome !== 'ok' && sample.outcome !== 'unavailable' || sample.ms > HANG_MS));
  }
}
