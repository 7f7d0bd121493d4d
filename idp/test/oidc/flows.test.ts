import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { Redis } from 'ioredis';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { SERVER_SETUPS, startTestServer, TEST_REDIS_URL, type TestServer } from '../../../test/support/server.ts';

const API = 'urn:jobswipe:api';
const WEB_CALLBACK = 'http://localhost:3000/api/auth/callback/jobswipe';
const PARTNER_CALLBACK = 'https://partner.example/callback';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

async function oauthError(promise: Promise<unknown>): Promise<{ error: string; status: number }> {
  try {
    await promise;
  } catch (error) {
    // openid-client reports a 401 through its WWW-Authenticate challenge.
    const { error: code, status, cause } = error as { error?: string; status?: number; cause?: Array<{ parameters?: { error?: string } }> };
    return { error: String(code ?? cause?.[0]?.parameters?.error), status: Number(status) };
  }
  throw new Error('expected an OAuth error');
}

describe.each(SERVER_SETUPS)('OpenID Connect flows (%s)', (kind) => {
  let idp: TestServer;
  let web: RelyingParty;
  let partner: RelyingParty;
  let desktop: RelyingParty;
  let service: RelyingParty;

  beforeAll(async () => {
    idp = await startTestServer(kind);
    const { id: aliceId } = await idp.createUser({ ...alice, name: 'Alice Example' });
    // These tests sign Alice in to the desktop client from many browsers: a plan with room for them
    // (the desktop device limit has its own tests, test/usage/desktop-devices*.test.ts).
    const administrator = { kind: 'administrator' } as const;
    await idp.server.libraries.plans.save({ id: 'unlimited', name: 'Unlimited', limits: {}, desktop_devices: 1000 }, administrator);
    await idp.server.libraries.plans.setPlan(aliceId, 'unlimited', administrator);
    web = await relyingParty(
      idp.issuer,
      await idp.registerClient({
        client_id: 'jobswipe-web',
        client_name: 'JobSwipe',
        redirect_uris: [WEB_CALLBACK],
        post_logout_redirect_uris: ['http://localhost:3000/'],
        first_party: true,
      }),
    );
    partner = await relyingParty(
      idp.issuer,
      await idp.registerClient({ client_id: 'partner', client_name: 'Partner Jobs', redirect_uris: [PARTNER_CALLBACK] }),
    );
    desktop = await relyingParty(
      idp.issuer,
      await idp.registerClient({
        client_id: 'jobswipe-desktop',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
        redirect_uris: ['http://127.0.0.1/callback'],
        first_party: true,
      }),
      'http://127.0.0.1:53123/callback',
    );
    service = await relyingParty(
      idp.issuer,
      await idp.registerClient({
        client_id: 'worker',
        grant_types: ['client_credentials'],
        redirect_uris: [],
        response_types: [],
        scope: 'api:read',
      }),
    );
  });

  afterAll(async () => {
    await idp?.stop();
  });

  async function webSignIn(scope = 'openid profile email offline_access', rp = web, browser = new Browser()) {
    const request = await authorizationRequest(rp, scope);
    const callback = await signIn(browser, idp.issuer, request, rp.redirectUri, alice);
    expect(callback.status).toBe(303);
    expect(callback.location).toMatch(new RegExp(`^${rp.redirectUri.replace(/[.?]/g, '\\$&')}\\?`));
    return { request, callback: callback.location!, browser, tokens: await exchangeCode(rp, request, callback.location!) };
  }

  it('publishes discovery with the configured issuer on localhost and 127.0.0.1', async () => {
    const port = new URL(idp.issuer).port;
    for (const host of ['localhost', '127.0.0.1']) {
      const response = await fetch(`http://${host}:${port}/.well-known/openid-configuration`);
      expect(response.status).toBe(200);
      const discovery = (await response.json()) as Record<string, unknown>;
      expect(discovery['issuer']).toBe(idp.issuer);
      expect(discovery['response_types_supported']).toEqual(['code']);
      expect(discovery['code_challenge_methods_supported']).toEqual(['S256']);
      expect(discovery['authorization_response_iss_parameter_supported']).toBe(true);
      expect(discovery['grant_types_supported']).not.toContain('implicit');
      expect(discovery['grant_types_supported']).not.toContain('password');
      expect(discovery).toHaveProperty('introspection_endpoint');
      expect(discovery).toHaveProperty('revocation_endpoint');
      expect(discovery).toHaveProperty('end_session_endpoint');
    }
    const jwks = (await (await fetch(`${idp.issuer}/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) {
      expect(key).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
      expect(key['kid']).toEqual(expect.any(String));
      expect(key).not.toHaveProperty('d');
    }
  });

  it('signs a user in with code + PKCE: RS256 ID token with kid, iss on the response, userinfo', async () => {
    const { callback, tokens } = await webSignIn();
    expect(new URL(callback).searchParams.get('iss')).toBe(idp.issuer);
    const header = decodeProtectedHeader(tokens.id_token!);
    expect(header.alg).toBe('RS256');
    expect(header.kid).toEqual(expect.any(String));
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ iss: idp.issuer, aud: 'jobswipe-web', email: alice.email, name: 'Alice Example', email_verified: true });
    expect(tokens.expires_in).toBe(900);
    expect(tokens.refresh_token).toEqual(expect.any(String));
    const userinfo = await oidc.fetchUserInfo(web.config, tokens.access_token, claims.sub);
    expect(userinfo).toMatchObject({ sub: claims.sub, email: alice.email, name: 'Alice Example' });
    // Not in the query string (RFC 6750 §2.3: it ends up in logs and Referer headers).
    const inQuery = await fetch(`${idp.issuer}/me?${new URLSearchParams({ access_token: tokens.access_token })}`);
    expect(inQuery.status).toBe(400);
    expect(await inQuery.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('issues RFC 9068 JWT access tokens for the API, verifiable with the published JWKS', async () => {
    const { tokens } = await webSignIn('openid api:read');
    const jwks = createRemoteJWKSet(new URL(`${idp.issuer}/jwks`));
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, jwks, {
      issuer: idp.issuer,
      audience: API,
      typ: 'at+jwt',
      algorithms: ['RS256'],
    });
    expect(protectedHeader.kid).toEqual(expect.any(String));
    expect(payload).toMatchObject({ client_id: 'jobswipe-web', scope: 'api:read' });
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(payload.sub).toBe(tokens.claims()!.sub);
  });

  it('rotates refresh tokens on every use and revokes the grant when a rotated one is reused', async () => {
    const { tokens } = await webSignIn();
    const first = tokens.refresh_token!;
    const second = await oidc.refreshTokenGrant(web.config, first);
    expect(second.refresh_token).toEqual(expect.any(String));
    expect(second.refresh_token).not.toBe(first);
    const third = await oidc.refreshTokenGrant(web.config, second.refresh_token!);
    expect(third.refresh_token).not.toBe(second.refresh_token);

    // Its successor was used since, so this is a reuse even within the grace period.
    expect(await oauthError(oidc.refreshTokenGrant(web.config, first))).toMatchObject({ error: 'invalid_grant', status: 400 });
    // The reuse revoked the whole grant: the newest refresh token and the access token die with it.
    expect(await oauthError(oidc.refreshTokenGrant(web.config, third.refresh_token!))).toMatchObject({ error: 'invalid_grant' });
    const introspection = await oidc.tokenIntrospection(web.config, third.access_token);
    expect(introspection.active).toBe(false);
  });

  it('answers two concurrent redemptions of a refresh token with the same successor (the reuse grace period)', async () => {
    const { tokens } = await webSignIn();
    const [one, two] = await Promise.all([
      oidc.refreshTokenGrant(web.config, tokens.refresh_token!),
      oidc.refreshTokenGrant(web.config, tokens.refresh_token!),
    ]);
    expect(two.refresh_token).toBe(one.refresh_token);
    expect(two.access_token).toBe(one.access_token);
    expect(two.id_token).toBe(one.id_token);
    // One rotation: the grant lives on.
    const next = await oidc.refreshTokenGrant(web.config, one.refresh_token!);
    expect(next.refresh_token).not.toBe(one.refresh_token);
  });

  it('lets only one of two concurrent redemptions of an authorization code succeed', async () => {
    const request = await authorizationRequest(web, 'openid offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, alice);
    const results = await Promise.allSettled([
      exchangeCode(web, request, callback.location!),
      exchangeCode(web, request, callback.location!),
    ]);
    expect(results.filter((result) => result.status === 'fulfilled').length).toBe(1);
  });

  it('revokes the grant when an authorization code is redeemed a second time', async () => {
    const request = await authorizationRequest(web, 'openid offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, alice);
    const tokens = await exchangeCode(web, request, callback.location!);
    expect(await oauthError(exchangeCode(web, request, callback.location!))).toMatchObject({ error: 'invalid_grant' });
    expect(await oauthError(oidc.refreshTokenGrant(web.config, tokens.refresh_token!))).toMatchObject({ error: 'invalid_grant' });
  });

  it('rejects a wrong PKCE verifier', async () => {
    const request = await authorizationRequest(web, 'openid');
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, alice);
    const wrong = { ...request, verifier: oidc.randomPKCECodeVerifier() };
    expect(await oauthError(exchangeCode(web, wrong, callback.location!))).toMatchObject({ error: 'invalid_grant', status: 400 });
  });

  it('requires S256 PKCE from public clients and rejects plain', async () => {
    const browser = new Browser();
    const base = {
      client_id: 'jobswipe-desktop',
      response_type: 'code',
      redirect_uri: desktop.redirectUri,
      scope: 'openid',
      state: 'xyz',
    };
    for (const extra of [{}, { code_challenge: 'a'.repeat(43), code_challenge_method: 'plain' }]) {
      const response = await browser.request(`${idp.issuer}/auth?${new URLSearchParams({ ...base, ...extra })}`);
      expect(response.status).toBe(303);
      const location = new URL(response.location!);
      expect(location.origin + location.pathname).toBe(desktop.redirectUri);
      expect(location.searchParams.get('error')).toBe('invalid_request');
    }
  });

  it('grants offline_access only with prompt=consent (OpenID Connect Core §11): without it, no refresh token', async () => {
    const verifier = oidc.randomPKCECodeVerifier();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(web.config, {
      redirect_uri: web.redirectUri,
      scope: 'openid offline_access',
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    const request = { url: url.toString(), verifier, state, nonce };
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, alice);
    const tokens = await exchangeCode(web, request, callback.location!);
    expect(tokens.refresh_token).toBeUndefined();
    expect(tokens.scope).toBe('openid');
  });

  it('lets a confidential client sign in without PKCE (RFC 9700 §2.1.1 recommends it to them, requires it of public clients)', async () => {
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const url = oidc.buildAuthorizationUrl(web.config, { redirect_uri: web.redirectUri, scope: 'openid', state, nonce });
    const callback = await signIn(new Browser(), idp.issuer, { url: url.toString(), verifier: '', state, nonce }, web.redirectUri, alice);
    const tokens = await oidc.authorizationCodeGrant(web.config, new URL(callback.location!), { expectedState: state, expectedNonce: nonce, idTokenExpected: true });
    expect(tokens.claims()!['aud']).toBe('jobswipe-web');
  });

  it('accepts any port on a native client loopback redirect and signs the user in without consent', async () => {
    const { tokens } = await webSignIn('openid email offline_access', desktop);
    expect(tokens.claims()).toMatchObject({ aud: 'jobswipe-desktop', email: alice.email });
    const other = await relyingParty(idp.issuer, { client_id: 'jobswipe-desktop' }, 'http://127.0.0.1:61000/callback');
    await webSignIn('openid', other);
  });

  it('rides the existing SSO session: a second client signs in without a login form', async () => {
    const browser = new Browser();
    await webSignIn('openid', web, browser);
    const request = await authorizationRequest(desktop, 'openid email');
    const callback = await signIn(browser, idp.issuer, request, desktop.redirectUri);
    expect(callback.status).toBe(303);
    const tokens = await exchangeCode(desktop, request, callback.location!);
    expect(tokens.claims()!['email']).toBe(alice.email);
  });

  it('asks for consent for third-party clients: Allow signs in, Deny returns access_denied', async () => {
    const browser = new Browser();
    const request = await authorizationRequest(partner, 'openid email');
    let page = await browser.follow(request.url);
    page = await browser.follow(formAction(page.body, idp.issuer), undefined, {
      form: { _csrf: hiddenField(page.body, '_csrf'), email: alice.email, password: alice.password },
    });
    expect(page.status).toBe(200);
    expect(page.body).toContain('>Allow</button>');
    expect(page.body).toContain('>Deny</button>');
    expect(page.body).toContain('Partner Jobs');
    const denied = await browser.follow(formAction(page.body, idp.issuer), (url) => url.startsWith(PARTNER_CALLBACK), {
      form: { _csrf: hiddenField(page.body, '_csrf'), decision: 'deny' },
    });
    expect(new URL(denied.location!).searchParams.get('error')).toBe('access_denied');

    const again = await authorizationRequest(partner, 'openid email');
    const allowed = await signIn(browser, idp.issuer, again, PARTNER_CALLBACK, alice, 'allow');
    const tokens = await exchangeCode(partner, again, allowed.location!);
    expect(tokens.claims()!['email']).toBe(alice.email);
  });

  it('issues client-credentials JWTs for API scopes and refuses scopes the client does not have', async () => {
    const tokens = await oidc.clientCredentialsGrant(service.config, { scope: 'api:read' });
    const { payload } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${idp.issuer}/jwks`)), {
      issuer: idp.issuer,
      audience: API,
      typ: 'at+jwt',
    });
    expect(payload).toMatchObject({ client_id: 'worker', scope: 'api:read' });
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(await oauthError(oidc.clientCredentialsGrant(service.config, { scope: 'api:write' }))).toMatchObject({ error: 'invalid_scope' });
  });

  it('introspects with client authentication: refresh tokens carry iat and exp; bad credentials are refused', async () => {
    const { tokens } = await webSignIn();
    const result = await oidc.tokenIntrospection(web.config, tokens.refresh_token!);
    expect(result.active).toBe(true);
    expect(result.exp! - result.iat!).toBe(30 * 24 * 60 * 60);
    expect(result.client_id).toBe('jobswipe-web');

    const unauthenticated = await fetch(`${idp.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token! }),
    });
    // No credentials at all: oidc-provider answers invalid_request (RFC 6749 §5.2 allows it).
    expect(unauthenticated.status).toBe(400);
    expect(await unauthenticated.json()).toMatchObject({ error: 'invalid_request', error_description: 'no client authentication mechanism provided' });

    const wrongSecret = await relyingParty(idp.issuer, { client_id: 'jobswipe-web', client_secret: 'not-the-secret', redirect_uris: [WEB_CALLBACK] });
    expect(await oauthError(oidc.tokenIntrospection(wrongSecret.config, tokens.refresh_token!))).toMatchObject({ error: 'invalid_client', status: 401 });
    // Registered client_secret_basic: the same secret sent in the body is refused.
    const viaPost = await fetch(`${idp.issuer}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: tokens.refresh_token!, client_id: 'jobswipe-web', client_secret: String(web.config.clientMetadata().client_secret) }),
    });
    expect(viaPost.status).toBe(401);
    // The same rule at the pushed authorization request endpoint (RFC 9126), which authenticates clients too.
    const parViaPost = await fetch(`${idp.issuer}/request`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        client_id: 'jobswipe-web',
        client_secret: String(web.config.clientMetadata().client_secret),
        response_type: 'code',
        scope: 'openid',
        redirect_uri: WEB_CALLBACK,
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
        code_challenge_method: 'S256',
      }),
    });
    expect(parViaPost.status).toBe(401);
    expect(await parViaPost.json()).toMatchObject({ error: 'invalid_client' });

    const publicResult = await oidc.tokenIntrospection(desktop.config, tokens.refresh_token!);
    expect(publicResult.active).toBe(false);
  });

  it('revokes a refresh token (RFC 7009): it can no longer be used or introspected', async () => {
    const { tokens } = await webSignIn();
    await oidc.tokenRevocation(web.config, tokens.refresh_token!);
    expect(await oauthError(oidc.refreshTokenGrant(web.config, tokens.refresh_token!))).toMatchObject({ error: 'invalid_grant' });
    expect((await oidc.tokenIntrospection(web.config, tokens.refresh_token!)).active).toBe(false);
    // The grant went with it: the access token issued beside the refresh token is dead too.
    expect((await oidc.tokenIntrospection(web.config, tokens.access_token)).active).toBe(false);
  });

  it("refuses to revoke another client's token (RFC 7009 §2.1), which stays usable", async () => {
    const { tokens } = await webSignIn();
    expect(await oauthError(oidc.tokenRevocation(partner.config, tokens.refresh_token!))).toMatchObject({ error: 'invalid_request', status: 400 });
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token!);
    expect(refreshed.access_token).toEqual(expect.any(String));
  });

  it('keeps sessions, interactions and codes in Redis when it is configured, grants and tokens in the database', async () => {
    await webSignIn();
    const rows = await idp.server.database.db
      .selectFrom('oidc_models')
      .select(['model'])
      .distinct()
      .execute();
    const models = new Set(rows.map((row) => row.model));
    expect(models).toContain('Grant');
    expect(models).toContain('RefreshToken');
    expect(models).toContain('Client');
    const hot = ['Session', 'Interaction', 'AuthorizationCode'].filter((model) => models.has(model));
    if (kind === 'postgres+redis') {
      expect(hot).toEqual([]);
      const redis = new Redis(TEST_REDIS_URL);
      try {
        const prefix = idp.server.config.redis!.keyPrefix;
        const keys = await redis.keys(`${prefix}*`);
        expect(keys.some((key) => key.startsWith(`${prefix}Session:`))).toBe(true);
        // Interactions are deleted once finished; the redeemed code stays, consumed, until it expires.
        expect(keys.some((key) => key.startsWith(`${prefix}AuthorizationCode:`))).toBe(true);
      } finally {
        redis.disconnect();
      }
    } else {
      expect(hot).toContain('Session');
    }
  });

  it('logs out (RP-initiated): confirmation page, return to the registered URI, session gone', async () => {
    const { tokens, browser } = await webSignIn('openid offline_access');
    const endSession = oidc.buildEndSessionUrl(web.config, {
      id_token_hint: tokens.id_token!,
      post_logout_redirect_uri: 'http://localhost:3000/',
      state: 'bye',
    });
    const confirm = await browser.follow(endSession.toString());
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('>Sign out</button>');
    const action = /<form[^>]*action="([^"]+)"/.exec(confirm.body)![1]!;
    const done = await browser.follow(new URL(action, idp.issuer).toString(), (url) => url.startsWith('http://localhost:3000/'), {
      form: { xsrf: hiddenField(confirm.body, 'xsrf'), logout: 'yes' },
    });
    expect(done.status).toBe(303);
    expect(done.location).toBe('http://localhost:3000/?state=bye');

    // The browser's session is gone: a new sign-in shows the login form again.
    const request = await authorizationRequest(web, 'openid');
    const page = await browser.follow(request.url);
    expect(page.body).toContain('name="password"');
    // offline_access refresh tokens survive an RP-initiated logout.
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token!);
    expect(refreshed.access_token).toEqual(expect.any(String));
  });
});
