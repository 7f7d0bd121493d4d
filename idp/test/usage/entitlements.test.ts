import { createRemoteJWKSet, decodeJwt, jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, registeredRelyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/*
 * The `entitlements` scope: the `plan` and `entitlements` claims in the API's JWT access tokens
 * (verified against the published keys) and from userinfo, read when each is issued or answered, so
 * a plan change shows in the next one. On Postgres with Redis and on the embedded store.
 */

const API = 'urn:jobswipe:api';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const FREE = { plan: 'free', entitlements: { limits: { applications: 20 }, desktop_devices: 1, features: [] } };
const PRO = { plan: 'pro', entitlements: { limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] } };

describe.each(['postgres+redis', 'embedded'] as const)('entitlements in tokens (%s)', (setup) => {
  let idp: TestServer;
  let web: RelyingParty;
  let aliceId: string;
  let keys: ReturnType<typeof createRemoteJWKSet>;

  beforeAll(async () => {
    idp = await startTestServer(setup);
    aliceId = (await idp.createUser(alice)).id;
    await idp.server.libraries.plans.save({ id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] }, { kind: 'administrator' });
    web = await registeredRelyingParty(idp, {
      client_id: 'web',
      client_name: 'JobSwipe Web',
      redirect_uris: ['http://localhost:3000/callback'],
      first_party: true,
    });
    keys = createRemoteJWKSet(new URL(web.config.serverMetadata().jwks_uri ?? ''));
  });

  afterAll(async () => {
    await idp?.stop();
  });

  async function tokensFor(rp: RelyingParty, scope: string, extra: Record<string, string> = {}) {
    const request = await authorizationRequest(rp, scope, extra);
    const callback = await signIn(new Browser(), idp.issuer, request, rp.redirectUri, alice);
    expect(callback.location, callback.body.slice(0, 300)).toContain('code=');
    return exchangeCode(rp, request, callback.location ?? '');
  }

  async function verified(accessToken: string) {
    const { payload, protectedHeader } = await jwtVerify(accessToken, keys, { issuer: idp.issuer, audience: API, typ: 'at+jwt' });
    expect(protectedHeader.alg).toBe('RS256');
    return payload;
  }

  const setPlan = (plan: string) => idp.server.libraries.plans.setPlan(aliceId, plan, { kind: 'administrator' });

  it('puts the plan in the API access token, and a plan change in the next one (refresh)', async () => {
    await setPlan('free');
    const tokens = await tokensFor(web, 'openid entitlements api:read offline_access');
    const first = await verified(tokens.access_token);
    expect(first).toMatchObject({ sub: aliceId, ...FREE });
    expect(String(first['scope']).split(' ').sort()).toEqual(['api:read', 'entitlements']);
    // The ID token carries the scope's claims too.
    expect(tokens.claims()).toMatchObject(FREE);

    await setPlan('pro');
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token ?? '');
    expect(await verified(refreshed.access_token)).toMatchObject({ sub: aliceId, ...PRO });
    // The token issued before keeps what was true then (it lives 15 minutes).
    expect(decodeJwt(tokens.access_token)).toMatchObject(FREE);
  });

  it('answers the claims from userinfo as the plan is now', async () => {
    await setPlan('pro');
    // `entitlements` alone does not bind the token to the API: it stays a token for userinfo.
    const tokens = await tokensFor(web, 'openid email entitlements');
    expect(tokens.access_token.split('.')).toHaveLength(1);
    const sub = tokens.claims()?.sub ?? '';
    expect(await oidc.fetchUserInfo(web.config, tokens.access_token, sub)).toMatchObject({ sub: aliceId, email: alice.email, ...PRO });
    await setPlan('free');
    expect(await oidc.fetchUserInfo(web.config, tokens.access_token, sub)).toMatchObject({ sub: aliceId, ...FREE });
  });

  it('leaves the claims out when the scope was not asked for', async () => {
    const tokens = await tokensFor(web, 'openid email api:read');
    const payload = await verified(tokens.access_token);
    expect(payload).not.toHaveProperty('plan');
    expect(payload).not.toHaveProperty('entitlements');
    expect(tokens.claims()).not.toHaveProperty('plan');
    const userinfoTokens = await tokensFor(web, 'openid email');
    const info = await oidc.fetchUserInfo(web.config, userinfoTokens.access_token, userinfoTokens.claims()?.sub ?? '');
    expect(info).not.toHaveProperty('plan');
    expect(info).not.toHaveProperty('entitlements');
  });

  it('asks a third-party app’s user before it sees the plan; a client limited by its scope cannot ask', async () => {
    const partner = await registeredRelyingParty(idp, { client_id: 'partner', client_name: 'Partner', redirect_uris: ['http://localhost:4100/cb'] });
    const request = await authorizationRequest(partner, 'openid entitlements');
    const browser = new Browser();
    const login = await browser.follow(request.url);
    const consent = await browser.follow(formAction(login.body, idp.issuer), undefined, { form: { _csrf: hiddenField(login.body, '_csrf'), ...alice } });
    expect(consent.body).toContain('name="decision"');
    expect(consent.body).toContain('See your plan and its limits');

    const narrow = await registeredRelyingParty(idp, { client_id: 'narrow', redirect_uris: ['http://localhost:4200/cb'], scope: 'openid email' });
    const refused = await new Browser().follow((await authorizationRequest(narrow, 'openid entitlements')).url, (url) => url.startsWith('http://localhost:4200/'));
    expect(new URL(refused.location ?? '').searchParams.get('error')).toBe('invalid_scope');
  });

  it('answers temporarily_unavailable, not a server error, when DEFAULT_PLAN names no plan', async () => {
    const broken = await startTestServer(setup, { DEFAULT_PLAN: 'missing' });
    try {
      await broken.createUser(alice);
      const rp = await registeredRelyingParty(broken, { client_id: 'web', redirect_uris: ['http://localhost:3000/callback'], first_party: true });
      const request = await authorizationRequest(rp, 'openid entitlements');
      const callback = await signIn(new Browser(), broken.issuer, request, rp.redirectUri, alice);
      // openid-client refuses a 503 as an unexpected status; the response is its cause.
      const response = await exchangeCode(rp, request, callback.location ?? '').then(
        () => undefined,
        (error: { cause?: unknown }) => error.cause,
      );
      expect(response).toBeInstanceOf(Response);
      expect((response as Response).status).toBe(503);
      expect(await (response as Response).json()).toMatchObject({ error: 'temporarily_unavailable' });
    } finally {
      await broken.stop();
    }
  });
});
