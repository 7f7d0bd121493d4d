import { setTimeout as sleep } from 'node:timers/promises';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { startPrivateRedis, type PrivateRedis } from '../../../test/support/private-services.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'http://localhost:3000/cb';
const dana = { email: 'dana@example.com', password: 'redis goes away sometimes' };

describe('Redis outage', () => {
  let idp: TestServer;
  let redis: PrivateRedis;
  let rp: RelyingParty;

  beforeAll(async () => {
    // Its own Redis, with an append-only file so a restart keeps the sessions.
    redis = await startPrivateRedis();
    idp = await startTestServer('postgres', { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'outage:' });
    await idp.createUser(dana);
    rp = await relyingParty(idp.issuer, await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK], first_party: true }));
  });

  afterAll(async () => {
    await idp?.stop();
    await redis?.destroy();
  });

  it('answers fast with temporarily_unavailable and a red /readyz while Redis is down, and recovers by itself', async () => {
    const browser = new Browser();
    const first = await authorizationRequest(rp, 'openid offline_access');
    const callback = await signIn(browser, idp.issuer, first, CALLBACK, dana);
    const tokens = await exchangeCode(rp, first, callback.location!);
    expect((await fetch(`${idp.issuer}/readyz`)).status).toBe(200);

    await redis.stop();

    const started = performance.now();
    const request = await authorizationRequest(rp, 'openid');
    const refused = await browser.request(request.url);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(refused.status).toBe(303);
    expect(new URL(refused.location!).searchParams.get('error')).toBe('temporarily_unavailable');

    const readyz = await fetch(`${idp.issuer}/readyz`);
    expect(readyz.status).toBe(503);
    expect(await readyz.json()).toEqual({ status: 'redis unavailable' });
    expect((await fetch(`${idp.issuer}/healthz`)).status).toBe(200);

    // The account page needs the session from Redis: a clear 503 page, quickly, not a 500.
    const accountStarted = performance.now();
    const account = await browser.request(`${idp.issuer}/account`);
    expect(performance.now() - accountStarted).toBeLessThan(5_000);
    expect(account.status).toBe(503);
    expect(account.headers.get('content-type')).toContain('text/html');
    expect(account.body).toContain('briefly unavailable');

    // Grants and refresh tokens live in Postgres: refreshing needs no Redis.
    const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token!);
    expect(refreshed.refresh_token).toEqual(expect.any(String));

    await redis.start();
    let ready = 503;
    for (const deadline = Date.now() + 10_000; Date.now() < deadline && ready !== 200; await sleep(200)) {
      ready = (await fetch(`${idp.issuer}/readyz`)).status;
    }
    expect(ready).toBe(200);

    // The browser's session was kept by Redis across the restart: no login form this time.
    const again = await authorizationRequest(rp, 'openid');
    const resumed = await signIn(browser, idp.issuer, again, CALLBACK);
    expect(resumed.status).toBe(303);
    const afterwards = await exchangeCode(rp, again, resumed.location!);
    expect(afterwards.claims()!.sub).toBe(tokens.claims()!.sub);
    const stillValid = await oidc.refreshTokenGrant(rp.config, refreshed.refresh_token!);
    expect(stillValid.access_token).toEqual(expect.any(String));
    expect(idp.logs.join('')).not.toContain('"error":"server_error"');
  }, 60_000);
});
