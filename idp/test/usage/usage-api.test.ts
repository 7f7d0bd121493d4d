import { generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import type { Kysely } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeystoreTables } from '@jobswipe/keystore';
import { registeredRelyingParty, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { loadKek, openKeystore } from '../../src/signing-keys.ts';
import { currentKeyOf } from '../../src/sessions/logout-tokens.ts';

/*
 * The usage API (POST/GET /api/usage) over HTTP with real client-credentials tokens from the running
 * provider, on Postgres with Redis and on the embedded store. The server's clock is the test's.
 */

const API = 'urn:jobswipe:api';
const PASSWORD = 'a long and good passphrase';
const service = (client_id: string, scope?: string) => ({
  client_id,
  grant_types: ['client_credentials'],
  redirect_uris: [],
  response_types: [],
  ...(scope ? { scope } : {}),
});

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

describe.each(['postgres+redis', 'embedded'] as const)('usage API (%s)', (setup) => {
  let idp: TestServer;
  let clock = new Date('2031-01-15T12:00:00Z');
  let writer: RelyingParty;
  let tokens: Record<'write' | 'write2' | 'read' | 'other' | 'unregistered', string>;
  let alice: string;
  let bob: string;
  let carol: string;

  const token = async (rp: RelyingParty, scope: string) => (await oidc.clientCredentialsGrant(rp.config, { scope, resource: API })).access_token;

  async function call(method: string, options: { token?: string; body?: unknown; query?: Record<string, string>; headers?: Record<string, string>; raw?: string } = {}): Promise<Answer> {
    const url = new URL('/api/usage', idp.issuer);
    for (const [name, value] of Object.entries(options.query ?? {})) url.searchParams.set(name, value);
    const headers: Record<string, string> = { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...options.headers };
    let body: string | undefined;
    if (options.raw !== undefined || options.body !== undefined) {
      headers['content-type'] ??= 'application/json';
      body = options.raw ?? JSON.stringify(options.body);
    }
    const response = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
  }

  const post = (body: unknown, as = tokens.write) => call('POST', { token: as, body });
  const read = (query: Record<string, string>, as = tokens.read) => call('GET', { token: as, query });

  /** An RFC 9457 document with the status, and the Content-Type that says so. */
  function expectProblem(answer: Answer, status: number): void {
    expect(answer.status).toBe(status);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
    expect(answer.headers.get('cache-control')).toBe('no-store');
  }

  /** A token signed with the provider's own current key: every claim is the test's to choose. */
  async function forged(claims: Record<string, unknown>, header: Record<string, unknown> = {}): Promise<string> {
    const config = idp.server.config;
    const keystore = openKeystore(idp.server.database.db as unknown as Kysely<KeystoreTables>, config, (await loadKek(config)).kek);
    const jwk = currentKeyOf((await keystore.signingKeys()).jwks) as JWK;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ iss: idp.issuer, aud: API, sub: 'meter', client_id: 'meter', scope: 'usage:write', iat: now, exp: now + 300, jti: 'x', ...claims })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: jwk.kid!, ...header })
      .sign(await importJWK(jwk, 'RS256'));
  }

  beforeAll(async () => {
    // usage:write in API_SCOPES must still not reach clients that did not register it.
    idp = await startTestServer(setup, { API_SCOPES: 'api:read api:write usage:write' }, { start: { now: () => clock } });
    alice = (await idp.createUser({ email: 'alice@example.com', password: PASSWORD })).id;
    bob = (await idp.createUser({ email: 'bob@example.com', password: PASSWORD })).id;
    carol = (await idp.createUser({ email: 'carol@example.com', password: PASSWORD })).id;
    const { plans } = idp.server.libraries;
    await plans.save({ id: 'ten', name: 'Ten', limits: { applications: 10 }, desktop_devices: 1 }, { kind: 'administrator' });
    await plans.save({ id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3 }, { kind: 'administrator' });
    await plans.setPlan(bob, 'ten', { kind: 'administrator' });
    await plans.setPlan(carol, 'pro', { kind: 'administrator' });
    writer = await registeredRelyingParty(idp, service('meter', 'usage:write usage:read'));
    tokens = {
      write: await token(writer, 'usage:write'),
      write2: await token(await registeredRelyingParty(idp, service('meter-2', 'usage:write')), 'usage:write'),
      read: await token(await registeredRelyingParty(idp, service('reader', 'usage:read')), 'usage:read'),
      other: await token(await registeredRelyingParty(idp, service('reports', 'api:read')), 'api:read'),
      unregistered: await token(await registeredRelyingParty(idp, service('anyone')), 'usage:write'),
    };
  }, 120_000);

  afterAll(async () => {
    await idp?.stop();
  });

  it('records usage: 201 with meter, used, limit, remaining and period_end; GET reads it back', async () => {
    const answer = await post({ sub: alice, meter: 'applications', quantity: 2, idempotency_key: 'a-1' });
    expect(answer.status).toBe(201);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
    expect(answer.body).toStrictEqual({ meter: 'applications', used: 2, limit: 20, remaining: 18, period_end: '2031-02-01T00:00:00.000Z' });
    const got = await read({ sub: alice, meter: 'applications' });
    expect(got.status).toBe(200);
    expect(got.body).toStrictEqual({ meter: 'applications', used: 2, limit: 20, remaining: 18, period_start: '2031-01-01T00:00:00.000Z', period_end: '2031-02-01T00:00:00.000Z' });
    // usage:write may read too.
    expect((await read({ sub: alice, meter: 'applications' }, tokens.write)).status).toBe(200);
  });

  it('the same key again from the same client answers 200 with the first body and counts nothing; from another client it is another request', async () => {
    const first = await post({ sub: alice, meter: 'applications', quantity: 3, idempotency_key: 'a-2' });
    const again = await post({ sub: alice, meter: 'applications', quantity: 3, idempotency_key: 'a-2' });
    expect(first.status).toBe(201);
    expect(again.status).toBe(200);
    expect(again.body).toStrictEqual(first.body);
    expect((await post({ sub: alice, meter: 'applications', quantity: 3, idempotency_key: 'a-2' }, tokens.write2)).status).toBe(201);
    expect((await read({ sub: alice, meter: 'applications' })).body['used']).toBe(8);
    // The same key for another quantity is refused, and counts nothing.
    expectProblem(await post({ sub: alice, meter: 'applications', quantity: 4, idempotency_key: 'a-2' }), 422);
    expect((await read({ sub: alice, meter: 'applications' })).body['used']).toBe(8);
  });

  it('concurrent duplicates of one key: one 201, the rest 200 with the same body, counted once', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => post({ sub: carol, meter: 'applications', quantity: 5, idempotency_key: 'dup-1' })));
    expect(answers.map((answer) => answer.status).sort((a, b) => a - b)).toEqual([...Array.from({ length: 19 }, () => 200), 201]);
    expect(new Set(answers.map((answer) => JSON.stringify(answer.body))).size).toBe(1);
    expect((await read({ sub: carol, meter: 'applications' })).body['used']).toBe(5);
  });

  it('50 concurrent posts of quantity 1 with distinct keys against a limit of 10: exactly 10 × 201 and 40 × 429, used 10', async () => {
    const answers = await Promise.all(Array.from({ length: 50 }, (_, index) => post({ sub: bob, meter: 'applications', quantity: 1, idempotency_key: `b-${index}` })));
    const statuses = answers.map((answer) => answer.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(10);
    expect(statuses.filter((status) => status === 429)).toHaveLength(40);
    expect((await read({ sub: bob, meter: 'applications' })).body).toMatchObject({ used: 10, limit: 10, remaining: 0 });
  });

  it('usage past the limit: 429 problem with the usage fields, remaining 0, and Retry-After to the period end', async () => {
    const answer = await post({ sub: bob, meter: 'applications', quantity: 1, idempotency_key: 'b-over' });
    expectProblem(answer, 429);
    expect(answer.body).toMatchObject({ meter: 'applications', used: 10, limit: 10, remaining: 0, period_end: '2031-02-01T00:00:00.000Z' });
    expect(answer.headers.get('retry-after')).toBe(String(16 * 86400 + 12 * 3600));
  });

  it('the period rolls over at the start of the UTC month', async () => {
    clock = new Date('2031-01-31T23:59:30Z');
    expect((await post({ sub: bob, meter: 'applications', quantity: 1, idempotency_key: 'b-late' })).headers.get('retry-after')).toBe('30');
    clock = new Date('2031-02-01T00:00:00Z');
    const answer = await post({ sub: bob, meter: 'applications', quantity: 1, idempotency_key: 'b-late' });
    expect(answer.status).toBe(201);
    expect(answer.body).toStrictEqual({ meter: 'applications', used: 1, limit: 10, remaining: 9, period_end: '2031-03-01T00:00:00.000Z' });
    expect((await read({ sub: bob, meter: 'applications' })).body).toMatchObject({ used: 1, period_start: '2031-02-01T00:00:00.000Z' });
    clock = new Date('2031-01-15T12:00:00Z');
  });

  it('no token: 401 with WWW-Authenticate: Bearer and no error; a bad token: 401 with error="invalid_token"', async () => {
    const none = await call('POST', { body: { sub: alice, meter: 'applications', quantity: 1, idempotency_key: 'n-1' } });
    expectProblem(none, 401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="/);
    expect(none.headers.get('www-authenticate')).not.toMatch(/error=/);
    for (const bad of ['not-a-jwt', `${tokens.write.slice(0, -4)}AAAA`]) {
      const answer = await call('GET', { token: bad, query: { sub: alice, meter: 'applications' } });
      expectProblem(answer, 401);
      expect(answer.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+", error="invalid_token"/);
    }
    const basic = await call('GET', { headers: { authorization: 'Basic bWV0ZXI6eA==' }, query: { sub: alice, meter: 'applications' } });
    expectProblem(basic, 401);
    expect(basic.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
  });

  it("refuses tokens this provider did not issue to a client for itself for this API: another key, expired, another audience or issuer, a user's, sender-constrained, not an access token", async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const foreign = await new SignJWT({ iss: idp.issuer, aud: API, sub: 'meter', client_id: 'meter', scope: 'usage:write' })
      .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt' })
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const now = Math.floor(Date.now() / 1000);
    const refused = [
      foreign,
      await forged({ iat: now - 1000, exp: now - 60 }),
      await forged({ aud: 'urn:other:api' }),
      await forged({ iss: 'https://elsewhere.example' }),
      await forged({ sub: alice }),
      await forged({ cnf: { jkt: 'abc' } }),
      await forged({}, { typ: 'JWT' }),
    ];
    for (const [index, bad] of refused.entries()) {
      const answer = await post({ sub: alice, meter: 'applications', quantity: 1, idempotency_key: `forged-${index}` }, bad);
      expect(answer.status, `token ${index}`).toBe(401);
      expect(answer.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    }
    // The same forging with nothing wrong is accepted: the refusals above are each for its one change.
    expect((await post({ sub: alice, meter: 'applications', quantity: 1, idempotency_key: 'forged-ok' }, await forged({}))).status).toBe(201);
  });

  it('a token without the scope: 403 with error="insufficient_scope"; usage:read may only read', async () => {
    for (const as of [tokens.read, tokens.other]) {
      const answer = await post({ sub: alice, meter: 'applications', quantity: 1, idempotency_key: 's-1' }, as);
      expectProblem(answer, 403);
      expect(answer.headers.get('www-authenticate')).toMatch(/error="insufficient_scope", scope="usage:write"/);
    }
    expectProblem(await read({ sub: alice, meter: 'applications' }, tokens.other), 403);
  });

  it('usage:write reaches only clients that registered it, even when API_SCOPES lists it', async () => {
    expectProblem(await post({ sub: alice, meter: 'applications', quantity: 1, idempotency_key: 'u-1' }, tokens.unregistered), 403);
    const reports = await registeredRelyingParty(idp, service('reports-2', 'api:read'));
    await expect(token(reports, 'usage:write')).rejects.toMatchObject({ error: 'invalid_scope' });
  });

  it('a malformed request: 400 problem naming the field; a body that is not JSON: 400 or 415', async () => {
    const good = { sub: alice, meter: 'applications', quantity: 1, idempotency_key: 'm-1' };
    const cases: Array<[unknown, RegExp]> = [
      [{ ...good, quantity: 0 }, /quantity/],
      [{ ...good, quantity: 1.5 }, /quantity/],
      [{ ...good, quantity: '1' }, /quantity/],
      [{ ...good, idempotency_key: '' }, /idempotency_key/],
      [{ ...good, idempotency_key: 'k'.repeat(201) }, /idempotency_key/],
      [{ ...good, meter: 'Applications!' }, /meter/],
      [{ ...good, extra: true }, /extra/],
      [{ meter: 'applications', quantity: 1, idempotency_key: 'm-1' }, /sub/],
      [[good], /body/],
      [null, /body/],
    ];
    for (const [body, field] of cases) {
      const answer = await post(body);
      expectProblem(answer, 400);
      expect(answer.body['detail']).toMatch(field);
    }
    expectProblem(await call('POST', { token: tokens.write, raw: '{"sub": ' }), 400);
    expectProblem(await call('POST', { token: tokens.write, raw: 'sub=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415);
    expectProblem(await read({ sub: alice }), 400);
    expectProblem(await call('GET', { token: tokens.read, query: { sub: alice, meter: 'applications', extra: '1' } }), 400);
    expect((await read({ sub: alice, meter: 'applications' })).body['used']).toBe(9);
  });

  it('an unknown sub: 404 problem, nothing recorded', async () => {
    for (const sub of ['00000000-0000-4000-8000-000000000000', 'not-a-user']) {
      expectProblem(await post({ sub, meter: 'applications', quantity: 1, idempotency_key: `x-${sub}` }), 404);
      expectProblem(await read({ sub, meter: 'applications' }), 404);
    }
  });

  it('other methods: 405 problem with Allow', async () => {
    const answer = await call('PUT', { token: tokens.write, body: {} });
    expectProblem(answer, 405);
    expect(answer.headers.get('allow')).toContain('POST');
  });

  it('DEFAULT_PLAN naming a plan that does not exist: 503 problem with Retry-After, nothing recorded, and back once it exists', async () => {
    const db = idp.server.database.db as unknown as Kysely<{ plans: { id: string } }>;
    const before = await read({ sub: alice, meter: 'applications' });
    await db.deleteFrom('plans').where('id', '=', 'free').execute();
    try {
      const refused = await post({ sub: alice, meter: 'applications', quantity: 1, idempotency_key: 'no-default-plan' });
      expectProblem(refused, 503);
      expect(refused.headers.get('retry-after')).toBe('60');
      expectProblem(await read({ sub: alice, meter: 'applications' }), 503);
    } finally {
      await idp.server.libraries.plans.save({ id: 'free', name: 'Free', limits: { applications: 20 }, desktop_devices: 1 }, { kind: 'administrator' });
    }
    expect(await read({ sub: alice, meter: 'applications' })).toMatchObject({ status: 200, body: { used: before.body['used'] } });
  });
});
