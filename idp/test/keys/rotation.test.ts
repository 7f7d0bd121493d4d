import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseKek } from '@jobswipe/keystore';
import { freePort, ownLines, parseTable, runToExit, spawnNode, type Running } from '../../../test/support/processes.ts';
import { createTestStore, type TestStore } from '../../../test/support/stores.ts';

/**
 * Scheduled rotation, revocation and KEK changes across two real server processes sharing one
 * Postgres database, watched from the outside: token requests, /jwks and the CLI.
 */

const SERVER_ENTRY = 'idp/src/main.ts';
const CLI_ENTRY = 'idp/src/cli/main.ts';
const ISSUER = 'http://identity.jobswipe.test';
const API = 'urn:jobswipe:api';
const ROTATION_SECONDS = 60;
const CACHE_SECONDS = 5;
const POLL_SECONDS = 1;
/** How long every process may take to act on a key change (the brief's bound). */
const PROPAGATION_MS = 30_000;

/** Every child process this file started; afterAll kills whatever still runs. */
const children = new Set<Running>();

function track(running: Running): Running {
  children.add(running);
  void running.exited.then(() => children.delete(running));
  return running;
}

/** Runs a process to completion within the timeout (killed and failed otherwise), tracked meanwhile. */
const runTracked = (entry: string, args: string[], env: Record<string, string>, timeoutMs = 45_000) =>
  runToExit(entry, args, env, timeoutMs, { started: track });

interface ServerProcess extends Running {
  name: string;
  base: string;
}

async function waitForHealthy(server: ServerProcess, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) {
      throw new Error(`server ${server.name} exited with ${server.child.exitCode}; stderr: ${server.stderr()}`);
    }
    const status = await fetch(`${server.base}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      async (response) => (await response.arrayBuffer(), response.status),
      () => undefined,
    );
    if (status === 200) return;
    await sleep(100);
  }
  throw new Error(`server ${server.name} did not answer /healthz within ${timeoutMs} ms; stderr: ${server.stderr()}`);
}

interface JwksResponse {
  server: string;
  requestedAt: number;
  cacheControl: string | null;
  jwks: JSONWebKeySet;
  kids: string[];
}

async function fetchJwks(server: ServerProcess): Promise<JwksResponse> {
  const requestedAt = Date.now();
  const response = await fetch(`${server.base}/jwks`, { signal: AbortSignal.timeout(5_000) });
  expect(response.status, `GET ${server.base}/jwks`).toBe(200);
  const jwks = (await response.json()) as JSONWebKeySet;
  return { server: server.name, requestedAt, cacheControl: response.headers.get('cache-control'), jwks, kids: jwks.keys.map((key) => String(key.kid)) };
}

/**
 * A relying party that caches a server's JWKS exactly as long as Cache-Control allows (counted from
 * when it sent the request, as RFC 9111 does) and never refetches early, not even for an unknown kid:
 * the strictest client scheduled rotation promises to serve.
 */
class CachingRelyingParty {
  #cached: { response: JwksResponse; expiresAt: number } | undefined;
  readonly fetches: JwksResponse[] = [];

  readonly server: ServerProcess;

  constructor(server: ServerProcess) {
    this.server = server;
  }

  async keys(): Promise<JwksResponse> {
    if (this.#cached && Date.now() < this.#cached.expiresAt) return this.#cached.response;
    const response = await fetchJwks(this.server);
    const maxAge = Number(/(?:^|[,\s])max-age=(\d+)/.exec(response.cacheControl ?? '')?.[1] ?? 0);
    this.#cached = { response, expiresAt: response.requestedAt + maxAge * 1000 };
    this.fetches.push(response);
    return response;
  }
}

const VERIFY_OPTIONS = { issuer: ISSUER, audience: API, typ: 'at+jwt', algorithms: ['RS256'] };

describe('signing keys across two server processes on one Postgres database', () => {
  let store: TestStore;
  let databaseUrl: string;
  let kekText: string;
  let common: Record<string, string>;
  let secret: string;
  let a: ServerProcess;
  let b: ServerProcess;

  const cliEnv = () => ({ ...common, DATA_DIR: store.dataDir });

  async function cli(args: string[], env: Record<string, string> = cliEnv()) {
    const result = await runTracked(CLI_ENTRY, args, env);
    expect(result.err, `idp ${args.join(' ')} wrote to stderr`).toEqual([]);
    expect(result.code, `idp ${args.join(' ')}`).toBe(0);
    return result;
  }

  async function keysList(): Promise<Array<Record<string, string>>> {
    const { out } = await cli(['keys', 'list']);
    return parseTable(out);
  }

  async function startServer(name: string, env: Record<string, string> = {}): Promise<ServerProcess> {
    const port = await freePort();
    const running = track(spawnNode(SERVER_ENTRY, [], { ...common, DATA_DIR: store.dataDir, PORT: String(port), ...env }));
    const server: ServerProcess = { ...running, name, base: `http://127.0.0.1:${port}` };
    await waitForHealthy(server);
    return server;
  }

  /** A client_credentials token from the server; the time span in which it was signed. */
  async function requestToken(server: ServerProcess) {
    const sentAt = Date.now();
    const response = await fetch(`${server.base}/token`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`worker:${encodeURIComponent(secret)}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: 'grant_type=client_credentials&scope=api%3Aread',
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as { access_token?: string; error?: string; error_description?: string };
    const receivedAt = Date.now();
    if (response.status !== 200 || typeof body.access_token !== 'string') {
      throw new Error(`POST ${server.name}/token answered ${response.status}: ${JSON.stringify(body)}`);
    }
    return { token: body.access_token, kid: String(decodeProtectedHeader(body.access_token).kid), sentAt, receivedAt };
  }

  /** The error code jose gives when verifying the token against the JWKS, or 'ok'. */
  async function verification(token: string, jwks: JSONWebKeySet): Promise<string> {
    try {
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks), VERIFY_OPTIONS);
      expect(payload).toMatchObject({ client_id: 'worker', scope: 'api:read', aud: API, iss: ISSUER });
      return 'ok';
    } catch (error) {
      return (error as { code?: string }).code ?? String(error);
    }
  }

  /** Log lines at level error or above that a server wrote (pino JSON on stdout). */
  function errorLogs(server: ServerProcess): string[] {
    return server
      .stdout()
      .split('\n')
      .filter((line) => {
        try {
          return (JSON.parse(line) as { level?: number }).level! >= 50;
        } catch {
          return false;
        }
      });
  }

  beforeAll(async () => {
    store = await createTestStore('postgres');
    if (store.kind !== 'postgres') throw new Error('expected a Postgres store');
    databaseUrl = store.url;
    kekText = randomBytes(32).toString('base64');
    common = {
      DATABASE_URL: databaseUrl,
      DATABASE_POOL_MAX: '4',
      KEYSTORE_KEK: kekText,
      KEY_ROTATION_SECONDS: String(ROTATION_SECONDS),
      JWKS_CACHE_SECONDS: String(CACHE_SECONDS),
      KEYSTORE_POLL_SECONDS: String(POLL_SECONDS),
      ISSUER,
      HOST: '127.0.0.1',
      COOKIE_KEYS: randomBytes(32).toString('base64url'),
      LOG_LEVEL: 'info',
    };

    const migrated = await cli(['migrate']);
    expect(migrated.out[0]).toMatch(/^applied \d+ migration\(s\): .*0004_signing_key_envelopes/);
    const created = await cli(['clients', 'create', '--client-id', 'worker', '--grant-type', 'client_credentials', '--scope', 'api:read']);
    expect(created.out[0]).toBe('client_id: worker');
    secret = /^client_secret: (\S+)$/.exec(created.out[1] ?? '')?.[1] ?? '';
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);

    [a, b] = await Promise.all([startServer('A'), startServer('B')]);
  }, 120_000);

  afterAll(async () => {
    await Promise.all([...children].map((child) => child.stop()));
    await store?.drop();
  });

  it('(e) /jwks is served with Cache-Control: public, max-age=JWKS_CACHE_SECONDS by both processes', async () => {
    for (const server of [a, b]) {
      const response = await fetchJwks(server);
      expect(response.cacheControl).toBe(`public, max-age=${CACHE_SECONDS}`);
      expect(response.jwks.keys).toHaveLength(1);
      expect(response.jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      for (const member of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(response.jwks.keys[0]).not.toHaveProperty(member);
    }
    const [fromA, fromB] = await Promise.all([fetchJwks(a), fetchJwks(b)]);
    expect(fromA.kids).toEqual(fromB.kids);
  });

  it('(a) a scheduled rotation under load: every token verifies against the other process\'s cached JWKS', async () => {
    const initially = await keysList();
    expect(initially).toHaveLength(1);
    const [initial] = initially;
    expect(initial).toMatchObject({ STATE: 'current' });
    const oldKid = initial!['KID']!;
    const oldActivation = Date.parse(initial!['ACTIVATES']!);
    expect(Number.isNaN(oldActivation)).toBe(false);

    const relyingParties = { A: new CachingRelyingParty(a), B: new CachingRelyingParty(b) };
    const servers = { A: a, B: b };
    interface Sample { from: 'A' | 'B'; kid: string; sentAt: number; receivedAt: number; verified: string; token: string }
    const samples: Sample[] = [];
    const failedRequests: string[] = [];
    const watched: JwksResponse[] = [];

    // Watches both JWKS independently of the relying parties, to see when each process publishes what.
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const responses = await Promise.allSettled([fetchJwks(a), fetchJwks(b)]);
        for (const response of responses) {
          if (response.status === 'fulfilled') watched.push(response.value);
          else failedRequests.push(`GET /jwks: ${String(response.reason)}`);
        }
        await sleep(200);
      }
    })();

    const newKidBy = (from: 'A' | 'B') => samples.find((sample) => sample.from === from && sample.kid !== oldKid);
    const deadline = Date.now() + 90_000;
    try {
      for (let i = 0; Date.now() < deadline && !(newKidBy('A') && newKidBy('B')); i += 1) {
        const from = i % 2 === 0 ? 'A' : 'B';
        const other = from === 'A' ? 'B' : 'A';
        try {
          const issued = await requestToken(servers[from]);
          const jwks = await relyingParties[other].keys();
          samples.push({ from, ...issued, verified: await verification(issued.token, jwks.jwks) });
        } catch (error) {
          failedRequests.push(`${from}: ${(error as Error).message}`);
        }
        await sleep(120);
      }
    } finally {
      watching = false;
      await watcher;
    }

    expect(failedRequests).toEqual([]);
    const unverifiable = samples.filter((sample) => sample.verified !== 'ok');
    expect(
      unverifiable.map((sample) => `${sample.from} ${sample.kid} at ${new Date(sample.receivedAt).toISOString()}: ${sample.verified}`),
      'tokens a relying party honouring max-age could not verify',
    ).toEqual([]);
    expect(newKidBy('A'), 'A signed with a new key within 90 s').toBeDefined();
    expect(newKidBy('B'), 'B signed with a new key within 90 s').toBeDefined();
    const kids = [...new Set(samples.map((sample) => sample.kid))];
    expect(kids.length).toBeGreaterThanOrEqual(2);
    expect(kids[0]).toBe(oldKid);
    // Both processes signed with the old key before the rotation, a few requests per second each.
    for (const from of ['A', 'B'] as const) {
      expect(samples.filter((sample) => sample.from === from && sample.kid === oldKid).length).toBeGreaterThanOrEqual(20);
    }

    // The rotation went by the schedule: the new key is the current one, the old one retired.
    const listed = await keysList();
    const current = listed.find((row) => row['STATE'] === 'current');
    const newKid = current!['KID']!;
    expect(kids).toEqual([oldKid, newKid]);
    expect(listed.find((row) => row['KID'] === oldKid)).toMatchObject({ STATE: 'retired' });
    const activation = Date.parse(current!['ACTIVATES']!);
    // Listed times are whole seconds (truncated).
    expect(activation).toBeGreaterThanOrEqual(oldActivation + ROTATION_SECONDS * 1000 - 1_000);
    expect(activation).toBeLessThanOrEqual(oldActivation + (ROTATION_SECONDS + 3 * POLL_SECONDS + CACHE_SECONDS) * 1000);

    // Both processes signed with the new key within 30 s of its activation, and never before it.
    for (const from of ['A', 'B'] as const) {
      const first = newKidBy(from)!;
      expect(first.kid).toBe(newKid);
      expect(first.receivedAt).toBeGreaterThanOrEqual(activation);
      expect(first.receivedAt - activation, `${from} switched to the new key`).toBeLessThanOrEqual(PROPAGATION_MS);
      // Once switched, a process never signs with the old key again.
      expect(samples.filter((sample) => sample.from === from && sample.sentAt > first.receivedAt && sample.kid === oldKid)).toEqual([]);
    }

    // Prepublication, checked on every /jwks response seen: a relying party holding a response
    // (requested at t, fresh until t + max-age) already had the key of every token issued meanwhile.
    // The window covers the poll interval, not the few milliseconds a process takes to act on what
    // it read (a database round trip and a provider rebuild): REACTION_MS allows for those.
    const REACTION_MS = 250;
    const responses = [...watched, ...relyingParties.A.fetches, ...relyingParties.B.fetches];
    expect(responses.length).toBeGreaterThan(100);
    const stale = responses.flatMap((response) =>
      samples
        .filter((sample) => sample.receivedAt >= response.requestedAt && sample.receivedAt < response.requestedAt + CACHE_SECONDS * 1000 - REACTION_MS)
        .filter((sample) => !response.kids.includes(sample.kid))
        .map(
          (sample) =>
            `${response.server}/jwks requested at ${new Date(response.requestedAt).toISOString()} lacks ${sample.kid} of a token from ${sample.from} received at ${new Date(sample.receivedAt).toISOString()}`,
        ),
    );
    expect(stale.slice(0, 5), `${stale.length} cached JWKS responses could not verify a token issued while they were fresh`).toEqual([]);
    // The JWKS of both processes published the new key before either signed with it.
    const firstSigned = Math.min(...samples.filter((sample) => sample.kid === newKid).map((sample) => sample.sentAt));
    for (const name of ['A', 'B']) {
      const published = watched.find((response) => response.server === name && response.kids.includes(newKid));
      expect(published, `${name} published ${newKid}`).toBeDefined();
      expect(firstSigned - published!.requestedAt).toBeGreaterThanOrEqual((CACHE_SECONDS - 1) * 1000);
    }
    // Every response carried the configured caching header.
    expect(new Set(responses.map((response) => response.cacheControl))).toEqual(new Set([`public, max-age=${CACHE_SECONDS}`]));

  }, 150_000);

  it('(b) keys revoke: within 30 s both processes stop publishing and signing with the key; its tokens no longer verify', async () => {
    const [current] = (await keysList()).filter((row) => row['STATE'] === 'current');
    const revoked = current!['KID']!;
    const retired = (await keysList()).filter((row) => row['STATE'] === 'retired').map((row) => row['KID']!);
    expect(retired).toHaveLength(1);
    // A token signed by the key about to be revoked, which verifies until then.
    const tokenOfRevokedKey = await requestToken(a);
    expect(tokenOfRevokedKey.kid).toBe(revoked);
    expect(await verification(tokenOfRevokedKey.token, (await fetchJwks(b)).jwks)).toBe('ok');

    const { out } = await cli(['keys', 'revoke', revoked]);
    const revokedAt = Date.now();
    expect(out).toContain(`key ${revoked} revoked: no longer published`);
    const replacement = /^created current key (\S+), signing from /.exec(out.find((line) => line.startsWith('created current key')) ?? '')?.[1];
    expect(replacement).toBeDefined();
    expect(replacement).not.toBe(revoked);

    const done = new Map<string, number>();
    while (done.size < 2 && Date.now() - revokedAt < PROPAGATION_MS + 5_000) {
      for (const server of [a, b]) {
        if (done.has(server.name)) continue;
        const [{ kids }, issued] = await Promise.all([fetchJwks(server), requestToken(server)]);
        if (!kids.includes(revoked) && issued.kid !== revoked) done.set(server.name, Date.now() - revokedAt);
      }
      await sleep(200);
    }
    expect([...done.keys()].sort()).toEqual(['A', 'B']);
    for (const elapsed of done.values()) expect(elapsed).toBeLessThanOrEqual(PROPAGATION_MS);

    for (const [server, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const fresh = await fetchJwks(other);
      expect(fresh.kids).not.toContain(revoked);
      expect(fresh.kids.sort()).toEqual([replacement!, ...retired].sort());
      // The revoked key's tokens fail against a freshly fetched JWKS...
      expect(await verification(tokenOfRevokedKey.token, fresh.jwks)).toBe('ERR_JWKS_NO_MATCHING_KEY');
      // ...and the new key's verify, from either process.
      const issued = await requestToken(server);
      expect(issued.kid).toBe(replacement);
      expect(await verification(issued.token, fresh.jwks)).toBe('ok');
    }

    const listed = await keysList();
    expect(listed.find((row) => row['KID'] === revoked)).toMatchObject({ STATE: 'revoked' });
    expect(listed.find((row) => row['KID'] === revoked)?.['RETIRES']).toMatch(/^revoked \d{4}-/);
    expect(listed.find((row) => row['KID'] === replacement)).toMatchObject({ STATE: 'current' });
    // Neither process logged an error through the rotation and the revocation.
    expect(errorLogs(a)).toEqual([]);
    expect(errorLogs(b)).toEqual([]);
    expect(a.child.exitCode).toBeNull();
    expect(b.child.exitCode).toBeNull();
  }, 60_000);

  it('(c) a server with another KEYSTORE_KEK exits 2 with one line about the key-encryption key', async () => {
    const port = await freePort();
    const wrong = randomBytes(32).toString('base64');
    const result = await runTracked(SERVER_ENTRY, [], { ...common, KEYSTORE_KEK: wrong, DATA_DIR: store.dataDir, PORT: String(port) }, 30_000);
    expect(result.code).toBe(2);
    expect(result.err).toHaveLength(1);
    expect(result.err[0]).toMatch(/^jobswipe-identity: signing keys: /);
    expect(result.err[0]).toContain('key-encryption key');
    expect(result.err[0]).toContain(parseKek(wrong).id);
    expect(result.err[0]).toContain(parseKek(kekText).id);
    expect(result.stderr).not.toMatch(/^\s+at /m);
    // The key material appears nowhere in its output.
    expect(result.stderr + result.stdout).not.toContain(wrong);
    expect(result.stderr + result.stdout).not.toContain(kekText);
    // The running servers are not disturbed.
    expect((await fetchJwks(a)).kids.length).toBeGreaterThan(0);
  }, 40_000);

  it('(d) keys rewrap: a server with the new KEK file starts and serves; one with the old KEK exits 2', async () => {
    const before = await fetchJwks(a);
    const newKekText = randomBytes(32).toString('base64');
    const newKekFile = join(store.dataDir, 'new.kek');
    await writeFile(newKekFile, `${newKekText}\n`, { mode: 0o600 });
    const published = (await keysList()).filter((row) => row['STATE'] !== 'revoked');

    const { out } = await cli(['keys', 'rewrap', '--new-kek-file', newKekFile]);
    expect(out[0]).toBe(`sealed ${published.length} signing key(s) under ${parseKek(newKekText).id}`);
    expect(out[1]).toContain(`KEYSTORE_KEK_FILE=${newKekFile}`);

    // The servers running with the old KEK keep serving the keys they opened.
    await sleep(2 * POLL_SECONDS * 1000 + 500);
    expect((await fetchJwks(a)).kids.sort()).toEqual([...before.kids].sort());
    expect((await requestToken(b)).kid).toBe(before.kids[0]);

    const { KEYSTORE_KEK: _old, ...withoutKek } = common;
    const port = await freePort();
    const renewed = track(spawnNode(SERVER_ENTRY, [], { ...withoutKek, KEYSTORE_KEK_FILE: newKekFile, DATA_DIR: store.dataDir, PORT: String(port) }));
    const c: ServerProcess = { ...renewed, name: 'C', base: `http://127.0.0.1:${port}` };
    try {
      await waitForHealthy(c);
      const jwks = await fetchJwks(c);
      expect(jwks.kids.sort()).toEqual([...before.kids].sort());
      const issued = await requestToken(c);
      expect(issued.kid).toBe(before.kids[0]);
      expect(await verification(issued.token, (await fetchJwks(a)).jwks)).toBe('ok');
      expect(ownLines(c.stderr())).toEqual([]);
    } finally {
      await c.stop();
    }

    const oldKek = await runTracked(SERVER_ENTRY, [], { ...common, DATA_DIR: store.dataDir, PORT: String(await freePort()) }, 30_000);
    expect(oldKek.code).toBe(2);
    expect(oldKek.err).toHaveLength(1);
    expect(oldKek.err[0]).toMatch(/^jobswipe-identity: signing keys: .*key-encryption key/);
    expect(oldKek.err[0]).toContain(parseKek(newKekText).id);
    expect(oldKek.stderr).not.toMatch(/^\s+at /m);
  }, 90_000);
});
