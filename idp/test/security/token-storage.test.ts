import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { scanKeys } from '../../../test/support/redis.ts';
import { authorizationRequest, exchangeCode, registeredRelyingParty, signIn, webAppClient, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, TEST_REDIS_URL, type TestServer } from '../../../test/support/server.ts';

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

/**
 * Everything the database holds, as a leaked backup would: pg_dump of the server's database. pg_dump
 * (Debian's postgresql-client, installed by .ci/run) is required: without it this fails, never skips.
 */
async function databaseDump(url: string): Promise<string> {
  const { stdout } = await promisify(execFile)('pg_dump', ['--no-owner', url], { maxBuffer: 64 * 1024 * 1024 });
  expect(stdout).toContain('COPY public.oidc_models');
  return stdout;
}

/** Every key and every value under the server's Redis prefix, as a Redis dump would have them. */
async function redisContents(prefix: string): Promise<string> {
  const redis = new Redis(TEST_REDIS_URL);
  try {
    const parts: string[] = [];
    for (const key of await scanKeys(redis, `${prefix}*`)) {
      const type = await redis.type(key);
      const value =
        type === 'hash' ? await redis.hgetall(key) : type === 'set' ? await redis.smembers(key) : type === 'string' ? await redis.get(key) : type;
      parts.push(key, JSON.stringify(value));
    }
    return parts.join('\n');
  } finally {
    redis.disconnect();
  }
}

describe.each(['postgres', 'postgres+redis'] as const)('codes and tokens at rest (%s)', (setup) => {
  let idp: TestServer;
  let web: RelyingParty;

  beforeAll(async () => {
    idp = await startTestServer(setup);
    await idp.createUser({ ...alice, name: 'Alice Example' });
    web = await registeredRelyingParty(idp, webAppClient());
  });

  afterAll(async () => {
    await idp?.stop();
  });

  /** What a reader of the stores finds: the database dump, and with Redis its keys and values. */
  async function storesAtRest(): Promise<string> {
    const dump = await databaseDump((idp.store as { url: string }).url);
    return setup === 'postgres+redis' ? `${dump}\n${await redisContents(idp.server.config.redis!.keyPrefix)}` : dump;
  }

  it('a dump holds none of the code, refresh token and opaque access token a client holds, and they still work', async () => {
    const request = await authorizationRequest(web, 'openid profile email offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, alice);
    const code = new URL(callback.location!).searchParams.get('code')!;
    expect(code).toEqual(expect.any(String));

    // The code, live and unredeemed.
    expect(await storesAtRest()).not.toContain(code);

    const tokens = await exchangeCode(web, request, callback.location!);
    const refreshToken = tokens.refresh_token!;
    const accessToken = tokens.access_token;
    // Opaque (a userinfo token, no API resource), so stored: a JWT access token is not stored at all.
    expect(accessToken.split('.')).toHaveLength(1);

    const atRest = await storesAtRest();
    for (const [name, value] of Object.entries({ code, refreshToken, accessToken })) {
      expect(atRest.includes(value), `${name} found at rest`).toBe(false);
    }

    // Stored hashed, they still work: userinfo, introspection, the refresh grant.
    const sub = tokens.claims()!.sub;
    expect(await oidc.fetchUserInfo(web.config, accessToken, sub)).toMatchObject({ sub, email: alice.email });
    expect(await oidc.tokenIntrospection(web.config, refreshToken)).toMatchObject({ active: true, sub });
    const refreshed = await oidc.refreshTokenGrant(web.config, refreshToken);
    expect(refreshed.refresh_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).not.toBe(refreshToken);
    expect(await storesAtRest()).not.toContain(refreshed.refresh_token!);
  });
});

describe('codes in Redis', () => {
  let idp: TestServer;
  let web: RelyingParty;

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis');
    await idp.createUser({ ...alice, name: 'Alice Example' });
    web = await registeredRelyingParty(idp, webAppClient());
  });

  afterAll(async () => {
    await idp?.stop();
  });

  it('are kept under a key that does not hold the code; KEYS/SCAN for the code finds nothing', async () => {
    const request = await authorizationRequest(web, 'openid');
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, alice);
    const code = new URL(callback.location!).searchParams.get('code')!;
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const prefix = idp.server.config.redis!.keyPrefix;
      expect(await scanKeys(redis, `${prefix}AuthorizationCode:*`)).not.toEqual([]);
      expect(await scanKeys(redis, `*${code}*`)).toEqual([]);
    } finally {
      redis.disconnect();
    }
    expect((await exchangeCode(web, request, callback.location!)).access_token).toEqual(expect.any(String));
  });
});
