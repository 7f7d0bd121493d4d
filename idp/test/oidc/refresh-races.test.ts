import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerKey, sealContext } from '../../src/provider/refresh-replay.ts';
import { loadKek, openKeystore } from '../../src/signing-keys.ts';
import { Browser } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { scanKeys } from '../../../test/support/redis.ts';
import { startTestServer, TEST_REDIS_URL, type TestServer } from '../../../test/support/server.ts';

/*
 * The reuse grace period of rotating refresh tokens (REFRESH_TOKEN_REUSE_GRACE_SECONDS) and races at
 * the token endpoint, on Postgres + Redis, with plain HTTP as the relying party: a replay must give
 * back the very same bytes, so the answers are compared as they came.
 */

const WEB_CALLBACK = 'http://localhost:3000/api/auth/callback/jobswipe';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

interface TokenAnswer {
  status: number;
  body: Record<string, unknown>;
}

interface Client {
  id: string;
  secret: string;
}

/** A token endpoint request as a confidential client makes it (client_secret_basic). */
async function tokenRequest(baseUrl: string, client: Client, params: Record<string, string>, from?: string): Promise<TokenAnswer> {
  const response = await fetch(`${baseUrl}/token`, {
    method: 'POST',
    headers: {
      ...(from ? { 'x-forwarded-for': from } : {}),
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.id)}:${encodeURIComponent(client.secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: new URLSearchParams(params),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const refresh = (baseUrl: string, client: Client, refreshToken: string, extra: Record<string, string> = {}, from?: string) =>
  tokenRequest(baseUrl, client, { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra }, from);

/** The tokens of an answer: what a replay must repeat exactly. */
const tokensOf = (answer: TokenAnswer) => ({
  access_token: answer.body['access_token'],
  id_token: answer.body['id_token'],
  refresh_token: answer.body['refresh_token'],
  scope: answer.body['scope'],
  token_type: answer.body['token_type'],
});

interface AuditRow {
  id: number;
  event_type: string;
  client_id: string | null;
  user_id: string | null;
  details: Record<string, unknown>;
}

describe('refresh token reuse grace period and token endpoint races (postgres+redis)', () => {
  let idp: TestServer;
  let web: Client;
  let partner: Client;
  let webRp: RelyingParty;
  let aliceId: string;

  beforeAll(async () => {
    // Behind a trusted proxy: the two-process test gives each process's caller its own address.
    idp = await startTestServer('postgres+redis', { TRUST_PROXY: 'loopback' });
    aliceId = (await idp.createUser(alice)).id;
    const webMetadata = await idp.registerClient({
      client_id: 'jobswipe-web',
      client_name: 'JobSwipe',
      redirect_uris: [WEB_CALLBACK],
      first_party: true,
    });
    web = { id: 'jobswipe-web', secret: String(webMetadata['client_secret']) };
    webRp = await relyingParty(idp.issuer, webMetadata);
    const partnerMetadata = await idp.registerClient({ client_id: 'partner', client_name: 'Partner', redirect_uris: ['https://partner.example/callback'] });
    partner = { id: 'partner', secret: String(partnerMetadata['client_secret']) };
  });

  afterAll(async () => {
    await idp?.stop();
  });

  async function signedIn(server = idp, rp = webRp) {
    const request = await authorizationRequest(rp, 'openid email offline_access');
    const callback = await signIn(new Browser(), server.issuer, request, rp.redirectUri, alice);
    expect(callback.status).toBe(303);
    const tokens = await exchangeCode(rp, request, callback.location!);
    return { refreshToken: tokens.refresh_token!, accessToken: tokens.access_token };
  }

  async function auditRows(server: TestServer, afterId = 0): Promise<AuditRow[]> {
    return (await server.server.database.db
      .selectFrom('audit_events')
      .select(['id', 'event_type', 'client_id', 'user_id', 'details'])
      .where('id', '>', afterId)
      .orderBy('id')
      .execute()) as unknown as AuditRow[];
  }

  const lastAuditId = async (server = idp) => (await auditRows(server)).at(-1)?.id ?? 0;
  const types = (rows: AuditRow[]) => rows.map((row) => row.event_type);
  const count = (rows: AuditRow[], type: string) => rows.filter((row) => row.event_type === type).length;

  it('answers the same client presenting the just-rotated token with the same tokens, and the grant lives on', async () => {
    const { refreshToken } = await signedIn();
    const since = await lastAuditId();

    const first = await refresh(idp.server.url, web, refreshToken);
    expect(first.status).toBe(200);
    expect(first.body['refresh_token']).toEqual(expect.any(String));
    expect(first.body['refresh_token']).not.toBe(refreshToken);

    const again = await refresh(idp.server.url, web, refreshToken);
    expect(again.status).toBe(200);
    expect(tokensOf(again)).toEqual(tokensOf(first));
    expect(again.body['expires_in']).toBeGreaterThan(880);
    expect(again.body['expires_in']).toBeLessThanOrEqual(900);

    // The grant lives on: the successor rotates as usual, and the access token works.
    const userinfo = await fetch(`${idp.server.url}/me`, { headers: { authorization: `Bearer ${String(again.body['access_token'])}` } });
    expect(userinfo.status).toBe(200);
    const next = await refresh(idp.server.url, web, String(first.body['refresh_token']));
    expect(next.status).toBe(200);
    expect(next.body['refresh_token']).not.toBe(first.body['refresh_token']);

    const rows = await auditRows(idp, since);
    expect(types(rows)).toEqual(['token.refreshed', 'token.refresh_replayed', 'token.refreshed']);
    const [refreshed, replayed] = rows as [AuditRow, AuditRow];
    expect(replayed).toMatchObject({ client_id: 'jobswipe-web', user_id: aliceId });
    expect(replayed.details).toMatchObject({ grant_type: 'refresh_token', grant_id: refreshed.details['grant_id'], scope: 'openid email offline_access' });
  });

  it('keeps the answer sealed in Redis under a hash of the rotated token, for the grace period only', async () => {
    const { refreshToken } = await signedIn();
    const first = await refresh(idp.server.url, web, refreshToken);
    expect(first.status).toBe(200);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const keys = (await scanKeys(redis, `${idp.server.config.redis!.keyPrefix}RefreshTokenReplay:*`)).filter((key) => !key.includes(':grant:'));
      expect(keys.length).toBeGreaterThan(0);
      const kept = await Promise.all(keys.map(async (key) => ({ key, stored: await redis.hgetall(key), lifetime: await redis.ttl(key) })));
      const text = JSON.stringify(kept);
      for (const secret of [refreshToken, first.body['access_token'], first.body['refresh_token'], first.body['id_token']]) {
        expect(text).not.toContain(String(secret));
      }
      for (const { stored, lifetime } of kept) {
        expect(JSON.parse(String(stored['payload']))).toMatchObject({ grantId: expect.any(String), sealed: expect.any(String) });
        expect(lifetime).toBeGreaterThan(0);
        expect(lifetime).toBeLessThanOrEqual(10);
      }
    } finally {
      redis.disconnect();
    }
    // Nothing of it in the database: the hot, short-lived models live in Redis when it is configured.
    const inDatabase = await idp.server.database.db
      .selectFrom('oidc_models')
      .select(sql<number>`count(*)::int`.as('count'))
      .where('model', 'in', ['RefreshTokenReplay', 'AccessToken'])
      .executeTakeFirstOrThrow();
    expect(inDatabase.count).toBe(0);
  });

  it('replays an answer that a server of the earlier release kept as a JWE (a rolling upgrade)', async () => {
    const { refreshToken } = await signedIn();
    const first = await refresh(idp.server.url, web, refreshToken);
    expect(first.status).toBe(200);
    // What the earlier release stored: the same answer, sealed with the column cipher (a compact JWE).
    const cipher = await openKeystore(idp.server.database.db, idp.server.config, (await loadKek(idp.server.config)).kek).columnCipher();
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const context = sealContext(answerKey(refreshToken));
      const keys = (await scanKeys(redis, `${idp.server.config.redis!.keyPrefix}RefreshTokenReplay:*`)).filter((key) => !key.includes(':grant:'));
      let rewritten = 0;
      for (const key of keys) {
        const payload = JSON.parse(String(await redis.hget(key, 'payload'))) as { sealed: string };
        let plaintext: string;
        try {
          plaintext = cipher.shortLived('refresh answer').open(payload.sealed, context);
        } catch {
          continue; // another test's answer
        }
        const jwe = await cipher.seal(plaintext, context);
        expect(jwe.split('.')).toHaveLength(5);
        await redis.hset(key, 'payload', JSON.stringify({ ...payload, sealed: jwe }));
        rewritten += 1;
      }
      expect(rewritten).toBe(1);
    } finally {
      redis.disconnect();
    }

    const again = await refresh(idp.server.url, web, refreshToken);
    expect(again.status).toBe(200);
    expect(tokensOf(again)).toEqual(tokensOf(first));
    const next = await refresh(idp.server.url, web, String(first.body['refresh_token']));
    expect(next.status).toBe(200);
  });

  it('refuses another client presenting the rotated token, as before, and leaves the grant alone', async () => {
    const { refreshToken } = await signedIn();
    const first = await refresh(idp.server.url, web, refreshToken);
    expect(first.status).toBe(200);
    const since = await lastAuditId();

    const stolen = await refresh(idp.server.url, partner, refreshToken);
    expect(stolen.status).toBe(400);
    expect(stolen.body['error']).toBe('invalid_grant');
    expect(stolen.body).not.toHaveProperty('access_token');

    expect(types(await auditRows(idp, since))).toEqual([]);
    const next = await refresh(idp.server.url, web, String(first.body['refresh_token']));
    expect(next.status).toBe(200);
  });

  it('treats the rotated token as reused once its successor was used: the grant is revoked', async () => {
    const { refreshToken } = await signedIn();
    const first = await refresh(idp.server.url, web, refreshToken);
    const second = await refresh(idp.server.url, web, String(first.body['refresh_token']));
    expect(second.status).toBe(200);
    const since = await lastAuditId();

    const reused = await refresh(idp.server.url, web, refreshToken);
    expect(reused.status).toBe(400);
    expect(reused.body['error']).toBe('invalid_grant');

    const newest = await refresh(idp.server.url, web, String(second.body['refresh_token']));
    expect(newest.body['error']).toBe('invalid_grant');
    const userinfo = await fetch(`${idp.server.url}/me`, { headers: { authorization: `Bearer ${String(second.body['access_token'])}` } });
    expect(userinfo.status).toBe(401);
    const rows = await auditRows(idp, since);
    expect(types(rows)).toEqual(['token.reuse_detected']);
    expect(rows[0]!.details).toMatchObject({ grant_type: 'refresh_token', grant_revoked: true });
  });

  it('treats a replay asking for something else (another scope) as a reuse: the grant is revoked', async () => {
    const { refreshToken } = await signedIn();
    const first = await refresh(idp.server.url, web, refreshToken);
    expect(first.status).toBe(200);

    const narrower = await refresh(idp.server.url, web, refreshToken, { scope: 'openid' });
    expect(narrower.body['error']).toBe('invalid_grant');
    expect((await refresh(idp.server.url, web, String(first.body['refresh_token']))).body['error']).toBe('invalid_grant');
  });

  it('refuses the rotated token once the grant was revoked meanwhile (password change), without a replay', async () => {
    const { refreshToken } = await signedIn();
    const before = await lastAuditId();
    const first = await refresh(idp.server.url, web, refreshToken);
    expect(first.status).toBe(200);
    const grantId = String((await auditRows(idp, before))[0]!.details['grant_id']);
    const redis = new Redis(TEST_REDIS_URL);
    const keptFor = async () => redis.smembers(`${idp.server.config.redis!.keyPrefix}RefreshTokenReplay:grant:${grantId}`);
    try {
      expect(await keptFor()).toHaveLength(1);
      await idp.server.libraries.sessions.revokeAll(aliceId, 'password changed');
      // The kept answer went with the grant.
      expect(await keptFor()).toHaveLength(0);
      expect(await scanKeys(redis, `${idp.server.config.redis!.keyPrefix}RefreshTokenReplay:*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
    const since = await lastAuditId();

    const again = await refresh(idp.server.url, web, refreshToken);
    expect(again.status).toBe(400);
    expect(again.body['error']).toBe('invalid_grant');
    expect(again.body).not.toHaveProperty('refresh_token');
    expect(count(await auditRows(idp, since), 'token.refresh_replayed')).toBe(0);
  });

  it('answers 50 concurrent redemptions of one refresh token with one successor: one rotation, the grant alive', async () => {
    const { refreshToken } = await signedIn();
    const since = await lastAuditId();

    const answers = await Promise.all(Array.from({ length: 50 }, () => refresh(idp.server.url, web, refreshToken)));

    expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 50 }, () => 200));
    const distinct = new Set(answers.map((answer) => JSON.stringify(tokensOf(answer))));
    expect(distinct.size).toBe(1);
    const rows = await auditRows(idp, since);
    expect(count(rows, 'token.refreshed')).toBe(1);
    expect(count(rows, 'token.refresh_replayed')).toBe(49);
    expect(count(rows, 'token.reuse_detected')).toBe(0);

    const next = await refresh(idp.server.url, web, String(answers[0]!.body['refresh_token']));
    expect(next.status).toBe(200);
  });

  it('answers concurrent redemptions across two server processes with one successor', async () => {
    // A second server on the same Postgres database and Redis prefix, as another process would be.
    const twin = await startTestServer(
      'postgres',
      { ISSUER: idp.issuer, REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: idp.server.config.redis!.keyPrefix, TRUST_PROXY: 'loopback' },
      { store: idp.store },
    );
    try {
      for (let round = 0; round < 3; round += 1) {
        const { refreshToken } = await signedIn();
        const since = await lastAuditId();
        const servers = [idp.server.url, twin.server.url];
        // Two instances of the web app, one talking to each process (the limits on client
        // authentication count by address, and reserve points for requests under way).
        const instances = ['198.51.100.1', '198.51.100.2'];
        const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => refresh(servers[i % 2]!, web, refreshToken, {}, instances[i % 2])));

        expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 50 }, () => 200));
        expect(new Set(answers.map((answer) => JSON.stringify(tokensOf(answer)))).size).toBe(1);
        const rows = await auditRows(idp, since);
        expect(count(rows, 'token.refreshed')).toBe(1);
        expect(count(rows, 'token.refresh_replayed')).toBe(49);
        expect(count(rows, 'token.reuse_detected')).toBe(0);
        // The grant lives on, on either process.
        expect((await refresh(servers[round % 2]!, web, String(answers[0]!.body['refresh_token']))).status).toBe(200);
      }
    } finally {
      await twin.stop();
    }
  });

  it('lets exactly one of 50 concurrent redemptions of an authorization code succeed and revokes its grant', async () => {
    const request = await authorizationRequest(webRp, 'openid offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, webRp.redirectUri, alice);
    const code = new URL(callback.location!).searchParams.get('code')!;
    const since = await lastAuditId();

    const answers = await Promise.all(
      Array.from({ length: 50 }, () =>
        tokenRequest(idp.server.url, web, { grant_type: 'authorization_code', code, redirect_uri: WEB_CALLBACK, code_verifier: request.verifier }),
      ),
    );

    const winners = answers.filter((answer) => answer.status === 200);
    expect(winners).toHaveLength(1);
    for (const answer of answers.filter((answer) => answer.status !== 200)) {
      expect(answer.status).toBe(400);
      expect(answer.body['error']).toBe('invalid_grant');
    }
    const winner = winners[0]!;
    // The grant is revoked: the winner's refresh and access tokens no longer work.
    expect((await refresh(idp.server.url, web, String(winner.body['refresh_token']))).body['error']).toBe('invalid_grant');
    const userinfo = await fetch(`${idp.server.url}/me`, { headers: { authorization: `Bearer ${String(winner.body['access_token'])}` } });
    expect(userinfo.status).toBe(401);
    const rows = await auditRows(idp, since);
    expect(count(rows, 'token.issued')).toBe(1);
    // Every loser is audited as a reuse; those that came after the revocation found no grant left to revoke.
    const reuses = rows.filter((row) => row.event_type === 'token.reuse_detected');
    expect(reuses.length).toBeGreaterThanOrEqual(1);
    for (const row of reuses) expect(row.details).toMatchObject({ grant_type: 'authorization_code' });
    expect(reuses.some((row) => row.details['grant_revoked'] === true)).toBe(true);
  });

  describe('after the grace period, and without one', () => {
    let short: TestServer;
    let off: TestServer;
    let shortRp: RelyingParty;
    let offRp: RelyingParty;

    beforeAll(async () => {
      [short, off] = await Promise.all([
        startTestServer('postgres+redis', { REFRESH_TOKEN_REUSE_GRACE_SECONDS: '1' }),
        startTestServer('postgres+redis', { REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' }),
      ]);
      for (const server of [short, off]) {
        await server.createUser(alice);
        await server.registerClient({ client_id: 'jobswipe-web', client_secret: web.secret, client_name: 'JobSwipe', redirect_uris: [WEB_CALLBACK], first_party: true });
      }
      shortRp = await relyingParty(short.issuer, { client_id: 'jobswipe-web', client_secret: web.secret, redirect_uris: [WEB_CALLBACK] });
      offRp = await relyingParty(off.issuer, { client_id: 'jobswipe-web', client_secret: web.secret, redirect_uris: [WEB_CALLBACK] });
    });

    afterAll(async () => {
      await Promise.all([short?.stop(), off?.stop()]);
    });

    it('revokes the grant when the rotated token comes back after the grace period', async () => {
      const { refreshToken } = await signedIn(short, shortRp);
      const first = await refresh(short.server.url, web, refreshToken);
      expect(first.status).toBe(200);
      // The grace period is 1 s; the kept answer and the rotation's timestamp are both past it after 2.5 s.
      await sleep(2_500);
      const since = await lastAuditId(short);

      const late = await refresh(short.server.url, web, refreshToken);
      expect(late.body['error']).toBe('invalid_grant');
      expect((await refresh(short.server.url, web, String(first.body['refresh_token']))).body['error']).toBe('invalid_grant');
      const rows = await auditRows(short, since);
      expect(types(rows)).toEqual(['token.reuse_detected']);
      expect(rows[0]!.details).toMatchObject({ grant_type: 'refresh_token', grant_revoked: true });
    });

    it('revokes the grant at the first reuse with REFRESH_TOKEN_REUSE_GRACE_SECONDS=0', async () => {
      const { refreshToken } = await signedIn(off, offRp);
      const first = await refresh(off.server.url, web, refreshToken);
      expect(first.status).toBe(200);
      const since = await lastAuditId(off);

      const again = await refresh(off.server.url, web, refreshToken);
      expect(again.body['error']).toBe('invalid_grant');
      expect((await refresh(off.server.url, web, String(first.body['refresh_token']))).body['error']).toBe('invalid_grant');
      const rows = await auditRows(off, since);
      expect(types(rows)).toEqual(['token.reuse_detected']);
      // Nothing is kept for a replay.
      const redis = new Redis(TEST_REDIS_URL);
      try {
        expect(await scanKeys(redis, `${off.server.config.redis!.keyPrefix}RefreshTokenReplay*`)).toEqual([]);
      } finally {
        redis.disconnect();
      }
    });

    it('lets one of 50 concurrent redemptions succeed with REFRESH_TOKEN_REUSE_GRACE_SECONDS=0, and revokes the grant', async () => {
      const { refreshToken } = await signedIn(off, offRp);
      const answers = await Promise.all(Array.from({ length: 50 }, () => refresh(off.server.url, web, refreshToken)));
      const winners = answers.filter((answer) => answer.status === 200);
      expect(winners.length).toBeLessThanOrEqual(1);
      for (const answer of answers.filter((answer) => answer.status !== 200)) expect(answer.body['error']).toBe('invalid_grant');
      if (winners[0]) expect((await refresh(off.server.url, web, String(winners[0].body['refresh_token']))).body['error']).toBe('invalid_grant');
    });
  });
});

describe.each(['embedded', 'postgres'] as const)('token endpoint races without Redis (%s)', (kind) => {
  let idp: TestServer;
  let web: Client;
  let webRp: RelyingParty;

  beforeAll(async () => {
    // The longest grace period: 50 requests through one database connection (embedded) take seconds.
    idp = await startTestServer(kind, { REFRESH_TOKEN_REUSE_GRACE_SECONDS: '60' });
    await idp.createUser(alice);
    const metadata = await idp.registerClient({ client_id: 'jobswipe-web', client_name: 'JobSwipe', redirect_uris: [WEB_CALLBACK], first_party: true });
    web = { id: 'jobswipe-web', secret: String(metadata['client_secret']) };
    webRp = await relyingParty(idp.issuer, metadata);
  });

  afterAll(async () => {
    await idp?.stop();
  });

  const eventCount = async (type: string, grantId: string) =>
    (await idp.server.database.db
      .selectFrom('audit_events')
      .select('id')
      .where('event_type', '=', type)
      .where(sql<boolean>`details->>'grant_id' = ${grantId}`)
      .execute()).length;

  it('answers 50 concurrent redemptions of one refresh token with one successor, and a late repeat too', async () => {
    const request = await authorizationRequest(webRp, 'openid offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, webRp.redirectUri, alice);
    const tokens = await exchangeCode(webRp, request, callback.location!);

    const answers = await Promise.all(Array.from({ length: 50 }, () => refresh(idp.server.url, web, tokens.refresh_token!)));
    expect(answers.map((answer) => answer.status)).toEqual(Array.from({ length: 50 }, () => 200));
    expect(new Set(answers.map((answer) => JSON.stringify(tokensOf(answer)))).size).toBe(1);
    const repeat = await refresh(idp.server.url, web, tokens.refresh_token!);
    expect(tokensOf(repeat)).toEqual(tokensOf(answers[0]!));

    const grantId = String((await idp.server.provider.RefreshToken.find(String(answers[0]!.body['refresh_token'])))?.grantId);
    expect(await eventCount('token.refreshed', grantId)).toBe(1);
    expect(await eventCount('token.refresh_replayed', grantId)).toBe(50);
    expect(await eventCount('token.reuse_detected', grantId)).toBe(0);
    expect((await refresh(idp.server.url, web, String(answers[0]!.body['refresh_token']))).status).toBe(200);
  });

  it('lets exactly one of 50 concurrent redemptions of an authorization code succeed and revokes its grant', async () => {
    const request = await authorizationRequest(webRp, 'openid offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, webRp.redirectUri, alice);
    const code = new URL(callback.location!).searchParams.get('code')!;

    const answers = await Promise.all(
      Array.from({ length: 50 }, () =>
        tokenRequest(idp.server.url, web, { grant_type: 'authorization_code', code, redirect_uri: WEB_CALLBACK, code_verifier: request.verifier }),
      ),
    );
    const winners = answers.filter((answer) => answer.status === 200);
    expect(winners).toHaveLength(1);
    for (const answer of answers.filter((answer) => answer.status !== 200)) expect(answer.body['error']).toBe('invalid_grant');
    expect((await refresh(idp.server.url, web, String(winners[0]!.body['refresh_token']))).body['error']).toBe('invalid_grant');
    const userinfo = await fetch(`${idp.server.url}/me`, { headers: { authorization: `Bearer ${String(winners[0]!.body['access_token'])}` } });
    expect(userinfo.status).toBe(401);
  });
});
