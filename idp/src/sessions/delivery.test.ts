import { spawn } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLogoutNotifier, type DeliveryLog, type DeliveryOptions, type LogoutNotice } from './delivery.ts';
import { BACKCHANNEL_LOGOUT_EVENT, createLogoutTokenSigner, currentKeyOf, LOGOUT_TOKEN_TTL_SECONDS, type LogoutTokenSigner } from './logout-tokens.ts';

const ISSUER = 'https://id.jobswipe.test';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface KeyPair {
  jwk: JWK;
  publicKey: CryptoKey;
}

async function rsaKey(kid: string): Promise<KeyPair> {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  return { jwk: { ...(await exportJWK(privateKey)), kid }, publicKey };
}

let key: KeyPair;
/** Two more keys, for rotation. */
let old: KeyPair;
let next: KeyPair;
let sign: LogoutTokenSigner;

beforeAll(async () => {
  [key, old, next] = await Promise.all([rsaKey('current-key'), rsaKey('old-key'), rsaKey('next-key')]);
  sign = createLogoutTokenSigner(ISSUER, async () => key.jwk);
});

/** What a relying party's back-channel endpoint received. */
interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
  at: number;
}

interface Endpoint {
  /** http://127.0.0.1:PORT/backchannel */
  uri: string;
  port: number;
  requests: Received[];
  /** TCP connections accepted, whether or not a request followed. */
  connections(): number;
}

const servers: Server[] = [];

afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/**
 * A relying party on 127.0.0.1. `respond` sees each request once its body is in, with its index
 * (0 for the first); it may answer, or leave the request hanging.
 */
async function endpoint(respond: (index: number, response: ServerResponse, request: IncomingMessage) => void): Promise<Endpoint> {
  const requests: Received[] = [];
  let connections = 0;
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const index = requests.length;
      requests.push({
        method: request.method ?? '',
        url: request.url ?? '',
        headers: request.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: performance.now(),
      });
      respond(index, response, request);
    });
  });
  server.on('connection', () => (connections += 1));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { uri: `http://127.0.0.1:${port}/backchannel`, port, requests, connections: () => connections };
}

const answer = (status: number, headers: Record<string, string> = {}) => (_index: number, response: ServerResponse) => {
  response.writeHead(status, headers).end(status === 204 ? undefined : 'ok');
};
const hang = () => {};

const OPTIONS: DeliveryOptions = {
  policy: { allowLoopback: true, allowPrivate: false },
  timeoutMs: 2000,
  retries: 3,
  backoffMs: 20,
};

const notifierWith = (options: Partial<DeliveryOptions> = {}, log?: DeliveryLog) => createLogoutNotifier(sign, { ...OPTIONS, ...options }, log);

const notice = (uri: string, extra: Partial<LogoutNotice> = {}): LogoutNotice => ({ clientId: 'rp-1', sub: 'user-42', sid: 'sid-abc', uri, ...extra });

/** The logout_token of a request, after checking the request is a form post carrying only it. */
function logoutToken(request: Received): string {
  expect(request.method).toBe('POST');
  expect(request.headers['content-type']).toBe('application/x-www-form-urlencoded');
  const form = new URLSearchParams(request.body);
  expect([...form.keys()]).toEqual(['logout_token']);
  return form.get('logout_token') ?? '';
}

async function verified(token: string, audience = 'rp-1') {
  return jwtVerify(token, key.publicKey, { issuer: ISSUER, audience, typ: 'logout+jwt', algorithms: ['RS256'] });
}

describe('createLogoutNotifier deliver', () => {
  it('delivers to an endpoint answering 200 in one attempt', async () => {
    const rp = await endpoint(answer(200));
    const results = await notifierWith().deliver([notice(`${rp.uri}?tenant=7`)]);
    expect(results).toEqual([{ clientId: 'rp-1', uri: `${rp.uri}?tenant=7`, delivered: true, attempts: 1, status: 200 }]);
    expect(results[0]).not.toHaveProperty('error');
    expect(rp.requests).toHaveLength(1);
    expect(rp.requests[0]?.url).toBe('/backchannel?tenant=7');
    expect(rp.requests[0]?.headers['user-agent']).toBe('JobSwipe-Identity');
    logoutToken(rp.requests[0]!);
  });

  it('204 counts as delivered', async () => {
    const rp = await endpoint(answer(204));
    expect(await notifierWith().deliver([notice(rp.uri)])).toEqual([
      { clientId: 'rp-1', uri: rp.uri, delivered: true, attempts: 1, status: 204 },
    ]);
    expect(rp.requests).toHaveLength(1);
  });

  it('retries after 5xx with doubling backoff, and clears the error once delivered', async () => {
    const rp = await endpoint((index, response) => response.writeHead(index < 2 ? 500 : 200).end());
    const [result] = await notifierWith({ backoffMs: 300 }).deliver([notice(rp.uri)]);
    expect(result).toEqual({ clientId: 'rp-1', uri: rp.uri, delivered: true, attempts: 3, status: 200 });
    expect(rp.requests).toHaveLength(3);
    const [first, second, third] = rp.requests.map((request) => request.at);
    // 300 ms before the first retry, 600 ms before the second (timers may fire a millisecond early,
    // and late by a quarter of a second on a busy machine without the first wait passing for a doubled one).
    expect(second! - first!).toBeGreaterThanOrEqual(298);
    expect(second! - first!).toBeLessThan(550);
    expect(third! - second!).toBeGreaterThanOrEqual(598);
  });

  it('signs a fresh token for every attempt (distinct jti), each one valid', async () => {
    const rp = await endpoint((index, response) => response.writeHead(index < 2 ? 503 : 200).end());
    await notifierWith().deliver([notice(rp.uri)]);
    const jtis = await Promise.all(rp.requests.map(async (request) => (await verified(logoutToken(request))).payload.jti));
    expect(jtis).toHaveLength(3);
    for (const jti of jtis) expect(jti).toMatch(UUID);
    expect(new Set(jtis).size).toBe(3);
  });

  it('retries after 429', async () => {
    const rp = await endpoint((index, response) => response.writeHead(index === 0 ? 429 : 200).end());
    expect(await notifierWith().deliver([notice(rp.uri)])).toEqual([
      { clientId: 'rp-1', uri: rp.uri, delivered: true, attempts: 2, status: 200 },
    ]);
    expect(rp.requests).toHaveLength(2);
  });

  it('gives up after the retries when the endpoint keeps failing with 5xx', async () => {
    const rp = await endpoint(answer(500));
    expect(await notifierWith({ retries: 2 }).deliver([notice(rp.uri)])).toEqual([
      { clientId: 'rp-1', uri: rp.uri, delivered: false, attempts: 3, status: 500, error: 'answered 500' },
    ]);
    expect(rp.requests).toHaveLength(3);
  });

  it('does not retry a 400', async () => {
    const rp = await endpoint(answer(400));
    expect(await notifierWith().deliver([notice(rp.uri)])).toEqual([
      { clientId: 'rp-1', uri: rp.uri, delivered: false, attempts: 1, status: 400, error: 'answered 400' },
    ]);
    expect(rp.requests).toHaveLength(1);
  });

  it('neither follows nor retries a redirect', async () => {
    const elsewhere = await endpoint(answer(200));
    const rp = await endpoint(answer(302, { location: elsewhere.uri }));
    expect(await notifierWith().deliver([notice(rp.uri)])).toEqual([
      { clientId: 'rp-1', uri: rp.uri, delivered: false, attempts: 1, status: 302, error: 'answered 302' },
    ]);
    expect(rp.requests).toHaveLength(1);
    expect(elsewhere.connections()).toBe(0);
  });

  it('retries a refused connection (a network error)', async () => {
    const rp = await endpoint(answer(200));
    const uri = rp.uri;
    // Close the server: its port now refuses connections.
    const server = servers.pop()!;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    for (const target of [uri, uri.replace('127.0.0.1', 'localhost')]) {
      expect(await notifierWith({ retries: 2 }).deliver([notice(target)])).toEqual([
        { clientId: 'rp-1', uri: target, delivered: false, attempts: 3, error: 'ECONNREFUSED' },
      ]);
    }
  });

  it('bounds each attempt by timeoutMs when the endpoint never answers, retrying each time', async () => {
    const rp = await endpoint(hang);
    const started = performance.now();
    const [result] = await notifierWith({ timeoutMs: 300, retries: 2 }).deliver([notice(rp.uri)]);
    const elapsed = performance.now() - started;
    expect(result).toEqual({ clientId: 'rp-1', uri: rp.uri, delivered: false, attempts: 3, error: 'timed out' });
    expect(rp.requests).toHaveLength(3);
    // Three attempts of 300 ms, with 20 + 40 ms of backoff between them.
    expect(elapsed).toBeGreaterThanOrEqual(3 * 300 + 60 - 10);
    expect(elapsed).toBeLessThan(3 * (300 + 40) + 600);
  });

  it('the timeout covers reading the answer too (headers sent, body stalls)', async () => {
    const rp = await endpoint((_index, response) => {
      response.writeHead(200, { 'content-length': '100' });
      response.write('partial');
    });
    const started = performance.now();
    const [result] = await notifierWith({ timeoutMs: 300, retries: 0 }).deliver([notice(rp.uri)]);
    expect(result).toMatchObject({ delivered: false, attempts: 1, error: 'timed out' });
    expect(performance.now() - started).toBeLessThan(1500);
  });

  it.each([
    ['localhost', (port: number) => `http://localhost:${port}/backchannel`, /^localhost resolves to a refused address: .* is a loopback address$/],
    ['127.0.0.1', (port: number) => `http://127.0.0.1:${port}/backchannel`, /^127\.0\.0\.1 is a loopback address$/],
    ['[::1]', (port: number) => `http://[::1]:${port}/backchannel`, /^::1 is a loopback address$/],
  ])('refuses a loopback URI (%s) without connecting when allowLoopback is false, and does not retry', async (_label, uriFor, error) => {
    const rp = await endpoint(answer(200));
    const uri = uriFor(rp.port);
    const [result] = await notifierWith({ policy: { allowLoopback: false, allowPrivate: true } }).deliver([notice(uri)]);
    expect(result).toMatchObject({ uri, delivered: false, attempts: 1 });
    expect(result).not.toHaveProperty('status');
    expect(result?.error).toMatch(error);
    expect(rp.connections()).toBe(0);
    expect(rp.requests).toHaveLength(0);
  });

  it('the same loopback URI is delivered when allowLoopback is true (the refusal above is the policy)', async () => {
    const rp = await endpoint(answer(200));
    const uri = `http://localhost:${rp.port}/backchannel`;
    expect(await notifierWith({ policy: { allowLoopback: true, allowPrivate: false } }).deliver([notice(uri)])).toEqual([
      { clientId: 'rp-1', uri, delivered: true, attempts: 1, status: 200 },
    ]);
    expect(rp.requests).toHaveLength(1);
  });

  it('reports a non-http(s) scheme and a malformed URI instead of throwing', async () => {
    const notifier = notifierWith();
    const results = await notifier.deliver([
      notice('ftp://rp.example/backchannel'),
      notice('file:///etc/passwd'),
      notice('not a uri'),
      notice(''),
    ]);
    expect(results).toEqual([
      { clientId: 'rp-1', uri: 'ftp://rp.example/backchannel', delivered: false, attempts: 0, error: 'ftp: is not http or https' },
      { clientId: 'rp-1', uri: 'file:///etc/passwd', delivered: false, attempts: 0, error: 'file: is not http or https' },
      { clientId: 'rp-1', uri: 'not a uri', delivered: false, attempts: 0, error: 'not a URL' },
      { clientId: 'rp-1', uri: '', delivered: false, attempts: 0, error: 'not a URL' },
    ]);
    expect(notifier.pending).toBe(0);
  });

  it('returns one result per notice, in order, each delivered independently', async () => {
    const ok = await endpoint(answer(200));
    const bad = await endpoint(answer(400));
    const results = await notifierWith().deliver([
      notice(ok.uri, { clientId: 'rp-ok' }),
      notice(bad.uri, { clientId: 'rp-bad' }),
      notice('nope', { clientId: 'rp-nope' }),
    ]);
    expect(results.map((result) => [result.clientId, result.delivered, result.status])).toEqual([
      ['rp-ok', true, 200],
      ['rp-bad', false, 400],
      ['rp-nope', false, undefined],
    ]);
  });

  it('logs the outcome without the token or the full URI', async () => {
    const ok = await endpoint(answer(200));
    const bad = await endpoint(answer(400));
    const lines: Array<[string, Record<string, unknown>, string]> = [];
    const log: DeliveryLog = {
      info: (fields, message) => lines.push(['info', fields as Record<string, unknown>, message]),
      warn: (fields, message) => lines.push(['warn', fields as Record<string, unknown>, message]),
    };
    await notifierWith({}, log).deliver([notice(`${ok.uri}?secret=1`), notice(bad.uri, { clientId: 'rp-2', sid: undefined })]);
    // The two deliveries run side by side: either may finish first.
    expect(lines.sort((a, b) => a[0].localeCompare(b[0]))).toEqual([
      ['info', { event: 'backchannel_logout', clientId: 'rp-1', origin: `http://127.0.0.1:${ok.port}`, attempts: 1, sid: true }, 'logout token delivered'],
      [
        'warn',
        { event: 'backchannel_logout', clientId: 'rp-2', origin: `http://127.0.0.1:${bad.port}`, attempts: 1, sid: false, error: 'answered 400' },
        'logout token not delivered',
      ],
    ]);
  });
});

describe('createLogoutNotifier notify and drain', () => {
  it('notify returns at once, before the endpoint has received anything; drain waits for the delivery', async () => {
    const rp = await endpoint(answer(200));
    const notifier = notifierWith();
    const returned = notifier.notify([notice(rp.uri)]);
    expect(returned).toBeUndefined();
    // Still synchronous here: nothing has been signed or sent yet.
    expect(notifier.pending).toBe(1);
    expect(rp.connections()).toBe(0);
    expect(rp.requests).toHaveLength(0);
    await notifier.drain(5000);
    expect(notifier.pending).toBe(0);
    expect(rp.requests).toHaveLength(1);
    await verified(logoutToken(rp.requests[0]!));
  });

  it('notify does not wait for a slow endpoint; drain gives up after its bound and stops the rest', async () => {
    const rp = await endpoint(hang);
    const notifier = notifierWith({ timeoutMs: 5000, retries: 3 });
    const started = performance.now();
    notifier.notify([notice(rp.uri), notice(rp.uri, { clientId: 'rp-2' })]);
    expect(notifier.pending).toBe(2);
    await notifier.drain(150);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(140);
    expect(waited).toBeLessThan(1500);
    // Cut off, not retried: nothing is left running after shutdown.
    expect(notifier.pending).toBe(0);
  });

  it('a delivery waiting for its retry stops at drain, without another attempt', async () => {
    const rp = await endpoint(answer(500));
    const notifier = notifierWith({ retries: 3, backoffMs: 10_000 });
    const result = notifier.deliver([notice(rp.uri)]);
    await expect.poll(() => rp.requests.length).toBe(1);
    const started = performance.now();
    await notifier.drain(50);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await result).toEqual([
      { clientId: 'rp-1', uri: rp.uri, delivered: false, attempts: 1, status: 500, error: 'the provider shut down before it was delivered' },
    ]);
    expect(rp.requests).toHaveLength(1);
  });

  it('drain returns at once when nothing is under way', async () => {
    const started = performance.now();
    await notifierWith().drain(5000);
    expect(performance.now() - started).toBeLessThan(50);
  });

  /**
   * Runs `deliver` for one notice in a separate Node process that holds nothing else open (as the
   * `idp` CLI on the embedded store does), and reports how that process ended.
   */
  async function deliverInOwnProcess(uri: string, retries: number) {
    const module = (name: string) => JSON.stringify(new URL(name, import.meta.url).href);
    const script = `
      import { generateKeyPair, exportJWK } from 'jose';
      import { createLogoutNotifier } from ${module('./delivery.ts')};
      import { createLogoutTokenSigner } from ${module('./logout-tokens.ts')};
      const { privateKey } = await generateKeyPair('RS256', { extractable: true });
      const jwk = { ...(await exportJWK(privateKey)), kid: 'k' };
      const notifier = createLogoutNotifier(createLogoutTokenSigner('${ISSUER}', async () => jwk), {
        policy: { allowLoopback: true, allowPrivate: false }, timeoutMs: 2000, retries: ${retries}, backoffMs: 50,
      });
      const results = await notifier.deliver([{ clientId: 'rp-1', sub: 'user-42', uri: '${uri}' }]);
      console.log(JSON.stringify(results));
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: new URL('../../../', import.meta.url).pathname,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    return { code, stdout, stderr };
  }

  it('deliver completes in a process of its own, which then exits normally', async () => {
    const rp = await endpoint(answer(200));
    const { code, stdout, stderr } = await deliverInOwnProcess(rp.uri, 1);
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(stdout)).toEqual([{ clientId: 'rp-1', uri: rp.uri, delivered: true, attempts: 1, status: 200 }]);
  });

  // KNOWN BUG (see the report): the backoff timer is unref'd, so a process with nothing else keeping
  // its event loop alive (the `idp` CLI on the embedded store) exits in the middle of a retry, with
  // status 13 and no output, instead of finishing the delivery. The test above shows the harness
  // works; this one fails today. Remove `.fails` once the backoff timer keeps the process alive.
  it('deliver keeps its process alive through a retry backoff', async () => {
    const rp = await endpoint(answer(500));
    const { code, stdout } = await deliverInOwnProcess(rp.uri, 1);
    expect({ code, requests: rp.requests.length }).toEqual({ code: 0, requests: 2 });
    expect(JSON.parse(stdout)).toEqual([{ clientId: 'rp-1', uri: rp.uri, delivered: false, attempts: 2, status: 500, error: 'answered 500' }]);
  });
});

describe('logout tokens', () => {
  it('carry the back-channel logout claims and verify as logout+jwt for the client', async () => {
    const rp = await endpoint(answer(200));
    const before = Math.floor(Date.now() / 1000);
    await notifierWith().deliver([notice(rp.uri, { clientId: 'rp-7', sub: 'user-9', sid: 'sid-xyz' })]);
    const after = Math.ceil(Date.now() / 1000);
    const { payload, protectedHeader } = await verified(logoutToken(rp.requests[0]!), 'rp-7');
    expect(protectedHeader).toEqual({ alg: 'RS256', typ: 'logout+jwt', kid: 'current-key' });
    expect(Object.keys(payload).sort()).toEqual(['aud', 'events', 'exp', 'iat', 'iss', 'jti', 'sid', 'sub']);
    expect(payload).toMatchObject({ iss: ISSUER, aud: 'rp-7', sub: 'user-9', sid: 'sid-xyz' });
    expect(payload.events).toEqual({ [BACKCHANNEL_LOGOUT_EVENT]: {} });
    expect(BACKCHANNEL_LOGOUT_EVENT).toBe('http://schemas.openid.net/event/backchannel-logout');
    expect(payload.jti).toMatch(UUID);
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.iat).toBeLessThanOrEqual(after);
    expect(LOGOUT_TOKEN_TTL_SECONDS).toBe(120);
    expect(payload.exp).toBe(payload.iat! + 120);
    expect(payload).not.toHaveProperty('nonce');
  });

  it('have no sid when the notice has none (every session of the subject ends)', async () => {
    const rp = await endpoint(answer(200));
    await notifierWith().deliver([notice(rp.uri, { sid: undefined }), notice(rp.uri, { sid: '' })]);
    expect(rp.requests).toHaveLength(2);
    for (const request of rp.requests) {
      const { payload } = await verified(logoutToken(request));
      expect(payload).not.toHaveProperty('sid');
      expect(payload.sub).toBe('user-42');
      expect(payload.events).toEqual({ [BACKCHANNEL_LOGOUT_EVENT]: {} });
    }
  });

  it('do not verify for another client, another issuer or as another type', async () => {
    const token = await sign({ clientId: 'rp-1', sub: 'user-42' });
    await expect(verified(token, 'rp-2')).rejects.toMatchObject({ code: 'ERR_JWT_CLAIM_VALIDATION_FAILED', claim: 'aud' });
    await expect(jwtVerify(token, key.publicKey, { issuer: 'https://other.example' })).rejects.toMatchObject({ claim: 'iss' });
    await expect(jwtVerify(token, key.publicKey, { typ: 'JWT' })).rejects.toMatchObject({ claim: 'typ' });
    await expect(verified(token)).resolves.toBeDefined();
  });

  it('are signed with whichever key is current at signing time (rotation)', async () => {
    let current = old.jwk;
    const rotating = createLogoutTokenSigner(ISSUER, async () => current);
    const check = async (token: string, pair: KeyPair): Promise<JWTPayload> => {
      const { payload, protectedHeader } = await jwtVerify(token, pair.publicKey, { issuer: ISSUER, audience: 'rp-1', typ: 'logout+jwt' });
      expect(protectedHeader.kid).toBe(pair.jwk.kid);
      return payload;
    };
    await check(await rotating({ clientId: 'rp-1', sub: 's' }), old);
    current = next.jwk;
    const rotated = await rotating({ clientId: 'rp-1', sub: 's' });
    await check(rotated, next);
    await expect(jwtVerify(rotated, old.publicKey)).rejects.toMatchObject({ code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED' });
  });

  it('refuse a signing key without kid', async () => {
    const { kid: _kid, ...withoutKid } = key.jwk;
    const signer = createLogoutTokenSigner(ISSUER, async () => withoutKid);
    await expect(signer({ clientId: 'rp-1', sub: 's' })).rejects.toThrow('the signing key has no kid');
  });
});

describe('currentKeyOf', () => {
  it('picks the key without key_ops ["verify"] (the one that signs now)', () => {
    const retired: JWK = { kty: 'RSA', kid: 'retired', key_ops: ['verify'] };
    const current: JWK = { kty: 'RSA', kid: 'current' };
    expect(currentKeyOf({ keys: [retired, current] })).toBe(current);
    expect(currentKeyOf({ keys: [current, retired] })).toBe(current);
  });

  it('accepts a key whose key_ops include sign, and one with empty key_ops', () => {
    const signer: JWK = { kty: 'RSA', kid: 'signer', key_ops: ['sign'] };
    const empty: JWK = { kty: 'RSA', kid: 'empty', key_ops: [] };
    expect(currentKeyOf({ keys: [{ kty: 'RSA', kid: 'r', key_ops: ['verify'] }, signer] })).toBe(signer);
    expect(currentKeyOf({ keys: [{ kty: 'RSA', kid: 'r', key_ops: ['verify'] }, empty] })).toBe(empty);
  });

  it('throws when no key may sign', () => {
    expect(() => currentKeyOf({ keys: [] })).toThrow('no current signing key');
    expect(() => currentKeyOf({ keys: [{ kty: 'RSA', kid: 'r', key_ops: ['verify'] }] })).toThrow('no current signing key');
  });

  it('works with a real private JWK: the chosen key signs tokens the matching public key verifies', async () => {
    const jwks = { keys: [{ ...old.jwk, key_ops: ['verify'] }, key.jwk] };
    const token = await createLogoutTokenSigner(ISSUER, async () => currentKeyOf(jwks))({ clientId: 'rp-1', sub: 's' });
    expect((await verified(token)).protectedHeader.kid).toBe('current-key');
  });
});
