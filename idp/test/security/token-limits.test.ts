import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { SignJWT } from 'jose';
import * as oidc from 'openid-client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPrivateRedis, type PrivateRedis } from '../../../test/support/private-services.ts';
import { relyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/**
 * Limits on the endpoints where clients authenticate (token, introspection, revocation): failed
 * client authentication counted per IP and per client id at an IP, and a request budget per client. A blocked request gets 429, Retry-After and an OAuth error before its credentials are read.
 */

const REQUESTS_PER_MINUTE = 20;

interface Client {
  client_id: string;
  client_secret: string;
}

type Endpoint = '/token' | '/token/introspection' | '/token/revocation';

interface Attempt {
  secret?: string;
  /** How the secret is sent; every client here registered client_secret_basic. */
  method?: 'basic' | 'post';
  path?: Endpoint;
  ip: string;
}

const PARAMS: Record<Endpoint, Record<string, string>> = {
  '/token': { grant_type: 'client_credentials' },
  '/token/introspection': { token: 'not-a-token' },
  '/token/revocation': { token: 'not-a-token' },
};

async function call(idp: TestServer, client: Client, attempt: Attempt) {
  const path = attempt.path ?? '/token';
  const secret = attempt.secret ?? client.client_secret;
  const params = new URLSearchParams(PARAMS[path]);
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': attempt.ip };
  if (attempt.method === 'post') {
    params.set('client_id', client.client_id);
    params.set('client_secret', secret);
  } else {
    headers['authorization'] = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
  }
  const response = await fetch(`${idp.issuer}${path}`, { method: 'POST', headers, body: params });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : text };
}

/**
 * A token request from another source address: every 127.0.0.0/8 address is loopback on Linux, and
 * the test server listens on 127.0.0.1. Without X-Forwarded-For the peer is the client's address.
 */
function callFrom(idp: TestServer, client: Client, localAddress: string, secret = client.client_secret): Promise<{ status: number; body: string }> {
  const issuer = new URL(idp.issuer);
  const body = new URLSearchParams(PARAMS['/token']).toString();
  return new Promise((resolve, reject) => {
    const sent = request(
      {
        host: '127.0.0.1',
        port: issuer.port,
        localAddress,
        method: 'POST',
        path: '/token',
        headers: {
          host: issuer.host,
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(secret)}`).toString('base64')}`,
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        response.on('error', reject);
      },
    );
    sent.on('error', reject);
    sent.end(body);
  });
}

async function expectLimited(response: Awaited<ReturnType<typeof call>>, description: RegExp, retryAfter: { above: number; atMost: number }) {
  expect(response.status).toBe(429);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  expect(response.headers.get('cache-control')).toBe('no-store');
  expect(response.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringMatching(description) });
  const seconds = Number(response.headers.get('retry-after'));
  expect(seconds).toBeGreaterThan(retryAfter.above);
  expect(seconds).toBeLessThanOrEqual(retryAfter.atMost);
}

const machineClient = (idp: TestServer, clientId: string) =>
  idp.registerClient({ client_id: clientId, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] }) as Promise<Client & Record<string, unknown>>;

// Counters in the database (embedded; plain Postgres uses the same store) and in Redis.
describe.each(['embedded', 'postgres+redis'] as const)('client authentication limits (%s)', (setup) => {
  let idp: TestServer;

  beforeAll(async () => {
    idp = await startTestServer(setup, { TRUST_PROXY: 'loopback', TOKEN_RATE_LIMIT_PER_MINUTE: String(REQUESTS_PER_MINUTE) });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('refuses an IP after 5 failed client authentications on any of the endpoints, before reading the credentials; other IPs are unaffected', async () => {
    const client = await machineClient(idp, 'per-ip');
    const ip = '198.51.100.1';
    const failures: Attempt[] = [
      { ip, secret: 'wrong secret' },
      { ip, secret: 'wrong secret', path: '/token/introspection' },
      { ip, secret: 'wrong secret', path: '/token/revocation' },
      // The right secret sent the way the client did not register: our method check refuses it.
      { ip, method: 'post' },
      { ip, method: 'post', path: '/token/introspection' },
    ];
    for (const [i, failure] of failures.entries()) {
      const response = await call(idp, client, failure);
      expect(response.status, `failure ${i + 1}`).toBe(401);
      expect(response.body).toMatchObject({ error: 'invalid_client' });
    }

    // Blocked means not checked: the right secret does not get a token, at any of the endpoints.
    for (const path of ['/token', '/token/introspection', '/token/revocation'] as const) {
      await expectLimited(await call(idp, client, { ip, path }), /too many failed client authentications from this address/, { above: 14 * 60, atMost: 15 * 60 });
    }
    expect(idp.logs.join('')).toContain('"event":"client_auth.rate_limited"');
    // Each failure and each refusal is in the audit log, with the endpoint and the claimed client.
    const audited = await idp.server.database.db
      .selectFrom('audit_events')
      .select(['event_type', 'client_id', 'ip', 'details'])
      .where('client_id', '=', 'per-ip')
      .where('event_type', 'like', 'client_auth.%')
      .orderBy('id')
      .execute();
    expect(audited.map((row) => [row.event_type, row.ip, row.details['endpoint']])).toEqual([
      ['client_auth.failure', ip, '/token'],
      ['client_auth.failure', ip, '/token/introspection'],
      ['client_auth.failure', ip, '/token/revocation'],
      ['client_auth.failure', ip, '/token'],
      ['client_auth.failure', ip, '/token/introspection'],
      ['client_auth.rate_limited', ip, '/token'],
      ['client_auth.rate_limited', ip, '/token/introspection'],
      ['client_auth.rate_limited', ip, '/token/revocation'],
    ]);

    const elsewhere = await call(idp, client, { ip: '198.51.100.2' });
    expect(elsewhere.status).toBe(200);
    expect(elsewhere.body).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String) });
  });

  it('counts an unknown client id against the IP too', async () => {
    const ghost = { client_id: 'no-such-client', client_secret: 'whatever it is' };
    const ip = '198.51.100.3';
    for (let i = 1; i <= 5; i += 1) expect((await call(idp, ghost, { ip })).status, `failure ${i}`).toBe(401);
    const client = await machineClient(idp, 'after-ghost');
    await expectLimited(await call(idp, client, { ip }), /from this address/, { above: 14 * 60, atMost: 15 * 60 });
  });

  it('failures from other addresses never refuse a client with the right secret: six failures from each of three addresses, then the real client from a fourth gets its token', async () => {
    const client = await machineClient(idp, 'locked-out');
    const other = await machineClient(idp, 'locked-out-other');
    for (const attacker of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i += 1) statuses.push((await callFrom(idp, client, attacker, 'wrong secret')).status);
      expect(statuses, attacker).toEqual([401, 401, 401, 401, 401, 429]);
    }
    const real = await callFrom(idp, client, '127.0.0.5');
    expect(real.status).toBe(200);
    expect(JSON.parse(real.body)).toMatchObject({ token_type: 'Bearer', access_token: expect.any(String) });
    // The attacking addresses stay refused, whichever client they name and whatever secret they send.
    for (const attacker of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) {
      const refused = await callFrom(idp, client, attacker);
      expect(refused.status, attacker).toBe(429);
      expect(JSON.parse(refused.body)).toMatchObject({ error: 'temporarily_unavailable', error_description: expect.stringMatching(/from this address/) });
      expect((await callFrom(idp, other, attacker)).status, attacker).toBe(429);
    }
    // Each failure is still audited, with the address it came from.
    const failures = await idp.server.database.db
      .selectFrom('audit_events')
      .select(['ip'])
      .where('client_id', '=', 'locked-out')
      .where('event_type', '=', 'client_auth.failure')
      .execute();
    expect(failures.map((row) => row.ip).sort()).toEqual(['127.0.0.2', '127.0.0.3', '127.0.0.4'].flatMap((ip) => Array<string>(5).fill(ip)));
  });

  it('evaluates at most 5 of 20 parallel wrong client secrets from one address; the rest get 429', async () => {
    const client = await machineClient(idp, 'parallel');
    const ip = '198.51.100.5';
    const responses = await Promise.all(Array.from({ length: 20 }, () => call(idp, client, { ip, secret: 'wrong secret' })));
    const audited = await idp.server.database.db
      .selectFrom('audit_events')
      .select(['event_type'])
      .where('client_id', '=', 'parallel')
      .execute();
    const failures = audited.filter((row) => row.event_type === 'client_auth.failure').length;
    expect(failures).toBeLessThanOrEqual(5);
    expect(responses.filter((response) => response.status === 401)).toHaveLength(failures);
    expect(responses.filter((response) => response.status === 429)).toHaveLength(20 - failures);
    expect(audited.filter((row) => row.event_type === 'client_auth.rate_limited')).toHaveLength(20 - failures);
  });

  it('answers 16 parallel requests with the right secret from one address, none refused (a burst waits, it does not spend the failure limit)', async () => {
    const client = await machineClient(idp, 'burst');
    const ip = '198.51.100.6';
    const responses = await Promise.all(Array.from({ length: 16 }, () => call(idp, client, { ip })));
    expect(responses.map((response) => response.status)).toEqual(Array.from({ length: 16 }, () => 200));
  });

  it('a successful client authentication clears the IP count', async () => {
    const client = await machineClient(idp, 'clears');
    const ip = '198.51.100.4';
    for (let i = 0; i < 4; i += 1) expect((await call(idp, client, { ip, secret: 'wrong secret' })).status).toBe(401);
    expect((await call(idp, client, { ip })).status).toBe(200);
    for (let i = 0; i < 5; i += 1) expect((await call(idp, client, { ip, secret: 'wrong secret' })).status).toBe(401);
    expect((await call(idp, client, { ip })).status).toBe(429);
  });

  it(`allows each client ${REQUESTS_PER_MINUTE} requests a minute (TOKEN_RATE_LIMIT_PER_MINUTE), then 429 until the minute is over; other clients are unaffected`, async () => {
    const client = await machineClient(idp, 'busy');
    const other = await machineClient(idp, 'quiet');
    for (let i = 1; i <= REQUESTS_PER_MINUTE; i += 1) {
      expect((await call(idp, client, { ip: `203.0.113.${i}` })).status, `request ${i}`).toBe(200);
    }
    await expectLimited(await call(idp, client, { ip: '203.0.113.100' }), /this client made too many requests/, { above: 0, atMost: 60 });

    // A relying party library sees a protocol error it can act on, not a broken response.
    const rp = await relyingParty(idp.issuer, client);
    const refused = await oidc.clientCredentialsGrant(rp.config).then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(oidc.ResponseBodyError);
    expect(refused).toMatchObject({ status: 429, error: 'temporarily_unavailable' });

    expect((await call(idp, other, { ip: '203.0.113.100' })).status).toBe(200);
  });
});

describe('device authorization requests share the limits (postgres+redis)', () => {
  let idp: TestServer;

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis', { TRUST_PROXY: 'loopback', TOKEN_RATE_LIMIT_PER_MINUTE: String(REQUESTS_PER_MINUTE) });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  const deviceAuth = (clientId: string, ip: string, secret?: string) =>
    fetch(`${idp.issuer}/device/auth`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        'x-forwarded-for': ip,
        ...(secret ? { authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` } : {}),
      },
      body: new URLSearchParams({ ...(secret ? {} : { client_id: clientId }), scope: 'openid' }),
    });

  it(`a public device client gets ${REQUESTS_PER_MINUTE} device codes a minute, then 429 temporarily_unavailable; wrong secrets count as failed client authentication`, async () => {
    const device = 'urn:ietf:params:oauth:grant-type:device_code';
    await idp.registerClient({ client_id: 'tv', token_endpoint_auth_method: 'none', grant_types: [device], response_types: [], redirect_uris: [] });
    for (let i = 1; i <= REQUESTS_PER_MINUTE; i += 1) {
      const response = await deviceAuth('tv', `203.0.113.${i}`);
      expect(response.status, `request ${i}`).toBe(200);
      expect(await response.json()).toMatchObject({ device_code: expect.any(String), user_code: expect.any(String) });
    }
    const refused = await deviceAuth('tv', '203.0.113.100');
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);

    const confidential = (await idp.registerClient({ client_id: 'tv-confidential', grant_types: [device], response_types: [], redirect_uris: [] })) as unknown as Client;
    const ip = '198.51.100.77';
    for (let i = 1; i <= 5; i += 1) expect((await deviceAuth(confidential.client_id, ip, 'wrong secret')).status, `failure ${i}`).toBe(401);
    expect((await deviceAuth(confidential.client_id, ip, confidential.client_secret)).status).toBe(429);
    expect((await deviceAuth(confidential.client_id, '198.51.100.78', confidential.client_secret)).status).toBe(200);
  });
});

describe('client authentication limits when their store fails (postgres)', () => {
  let idp: TestServer;

  /** As the database owner: the server's own role may not rename tables. */
  async function asOwner(text: string): Promise<void> {
    if (idp.store.kind !== 'postgres') throw new Error('expected a Postgres store');
    const client = new pg.Client({ connectionString: idp.store.url });
    await client.connect();
    try {
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  beforeAll(async () => {
    idp = await startTestServer('postgres');
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('refuses client authentication with 503 while the counters cannot be read: the limits fail closed', async () => {
    const client = await machineClient(idp, 'fail-closed');
    expect((await call(idp, client, { ip: '127.0.0.1' })).status).toBe(200);
    await asOwner('alter table rate_limits rename to rate_limits_away');
    try {
      const refused = await call(idp, client, { ip: '127.0.0.1' });
      expect(refused.status).toBe(503);
      expect(refused.body).toEqual({ error: 'temporarily_unavailable', error_description: expect.stringContaining('try again') });
      expect(refused.headers.get('retry-after')).toBe('60');
    } finally {
      await asOwner('alter table rate_limits_away rename to rate_limits');
    }
    expect((await call(idp, client, { ip: '127.0.0.1' })).status).toBe(200);
  });
});

describe('an outcome is counted before the answer goes out (postgres, counters in the database)', () => {
  let idp: TestServer;
  let owner: pg.Client;

  beforeAll(async () => {
    idp = await startTestServer('postgres');
    if (idp.store.kind !== 'postgres') throw new Error('expected a Postgres store');
    owner = new pg.Client({ connectionString: idp.store.url });
    await owner.connect();
  });
  afterAll(async () => {
    await owner?.end();
    await idp?.stop();
  });

  /** A client_secret_jwt assertion (RFC 7523): no secret in the request, so its outcome is counted after the provider's answer. */
  const assertion = (clientId: string, secret: string) =>
    new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(clientId)
      .setSubject(clientId)
      .setAudience(idp.issuer)
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode(secret));
  const tokenRequest = async (clientId: string, secret: string) => {
    const response = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: await assertion(clientId, secret),
      }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const addressCount = async () =>
    (await owner.query<{ points: string }>("select points from rate_limits where key like 'ratelimit:client-auth-ip:%'")).rows.map((row) => Number(row.points));

  it('a client that has its token finds its address cleared, however slowly the store clears it: its next request is not refused', async () => {
    const client = (await idp.registerClient({ client_id: 'hmac-signer', token_endpoint_auth_method: 'client_secret_jwt', grant_types: ['client_credentials'], response_types: [], redirect_uris: [] })) as unknown as Client;
    for (let i = 1; i <= 4; i += 1) expect((await tokenRequest(client.client_id, 'a wrong secret of enough length for HS256')).status, `failure ${i}`).toBe(401);
    expect(await addressCount()).toEqual([4]);
    // Clearing the counters takes half a second from now on (a busy database, a long queue for its pool).
    await owner.query(`
      create function slow_clearing() returns trigger language plpgsql as $$ begin perform pg_sleep(0.5); return null; end $$;
      create trigger slow_clearing before delete on rate_limits for each statement execute function slow_clearing();
    `);
    try {
      const first = await tokenRequest(client.client_id, client.client_secret);
      expect(first.status).toBe(200);
      // Its success cleared the address's failures before it was answered; the point it held went with them.
      expect(await addressCount()).toEqual([]);
      const next = await tokenRequest(client.client_id, client.client_secret);
      expect(next.body).toMatchObject({ access_token: expect.any(String) });
    } finally {
      await owner.query('drop trigger slow_clearing on rate_limits; drop function slow_clearing()');
    }
  });
});

describe('client authentication limits while Redis is down (postgres + a Redis of this test)', () => {
  let idp: TestServer;
  let redis: PrivateRedis;

  beforeAll(async () => {
    redis = await startPrivateRedis();
    idp = await startTestServer('postgres', { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'token-limits:', TRUST_PROXY: 'loopback' });
  });
  afterAll(async () => {
    await idp?.stop();
    await redis?.destroy();
  });

  it('keeps issuing tokens and keeps counting failures, in the database, until Redis is back', async () => {
    const client = await machineClient(idp, 'redis-down');
    await redis.stop();

    // Tokens and grants are in Postgres: an outage of Redis must not stop clients (docs/scaling.md).
    expect((await call(idp, client, { ip: '198.51.100.20' })).status).toBe(200);
    for (let i = 1; i <= 5; i += 1) expect((await call(idp, client, { ip: '198.51.100.21', secret: 'wrong secret' })).status, `failure ${i}`).toBe(401);
    await expectLimited(await call(idp, client, { ip: '198.51.100.21' }), /from this address/, { above: 14 * 60, atMost: 15 * 60 });
  });
});
