import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'http://localhost:3000/cb';
const carol = { email: 'carol@example.com', password: 'never log this password' };

describe('logs', () => {
  let idp: TestServer;
  beforeAll(async () => {
    idp = await startTestServer('embedded');
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('carry a request id and never a password, cookie, code, token or client secret', async () => {
    await idp.createUser(carol);
    const client = await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK], first_party: true });
    const rp = await relyingParty(idp.issuer, client);
    const browser = new Browser();
    const request = await authorizationRequest(rp, 'openid email offline_access');
    // A failed attempt first, so the failure path is logged too.
    await signIn(new Browser(), idp.issuer, request, CALLBACK, { ...carol, password: 'wrong password entered' });
    const callback = await signIn(browser, idp.issuer, request, CALLBACK, carol);
    const code = new URL(callback.location!).searchParams.get('code')!;
    const tokens = await exchangeCode(rp, request, callback.location!);
    const refreshed = await oidc.refreshTokenGrant(rp.config, tokens.refresh_token!);
    await oidc.fetchUserInfo(rp.config, refreshed.access_token, tokens.claims()!.sub);
    await oidc.tokenIntrospection(rp.config, refreshed.refresh_token!);
    await oidc.tokenRevocation(rp.config, refreshed.refresh_token!);
    // The ID token travels in a query string here: the access log must not copy it.
    await browser.follow(oidc.buildEndSessionUrl(rp.config, { id_token_hint: tokens.id_token! }).toString());
    await idp.server.log.flush?.();

    const cookies = (await browser.jar.getCookies(idp.issuer)).map((cookie) => cookie.value);
    const secrets: Record<string, string> = {
      password: carol.password,
      wrongPassword: 'wrong password entered',
      clientSecret: String(client['client_secret']),
      basicHeader: Buffer.from(`rp:${String(client['client_secret'])}`).toString('base64'),
      code,
      verifier: request.verifier,
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token!,
      rotatedRefreshToken: refreshed.refresh_token!,
      idToken: tokens.id_token!,
      ...Object.fromEntries(cookies.map((value, index) => [`cookie${index}`, value])),
    };
    expect(cookies.length).toBeGreaterThan(0);
    const text = idp.logs.join('');
    expect(idp.logs.length).toBeGreaterThan(10);
    for (const [name, value] of Object.entries(secrets)) {
      expect(value.length, name).toBeGreaterThan(8);
      expect(text.includes(value), `${name} appears in the log`).toBe(false);
    }
    const requests = idp.logs.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line['msg'] === 'request');
    expect(requests.length).toBeGreaterThan(5);
    for (const line of requests) expect(line['requestId']).toMatch(/^[\w-]+$/);
    expect(text).toContain('"event":"login.failure"');
  });
});
