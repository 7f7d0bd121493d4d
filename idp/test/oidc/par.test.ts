import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { authorizationParameters, oauthError, relyingParty, signIn, type AuthorizationRequest, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, TEST_REDIS_URL, type TestServer } from '../../../test/support/server.ts';

/*
 * Pushed authorization requests (RFC 9126) end to end, with openid-client pushing the request
 * (buildAuthorizationUrlWithPAR) as a relying party does. Pushed requests live in the database on
 * Postgres alone, in Redis with Redis.
 */

const WEB_CALLBACK = 'http://localhost:3000/callback';
const SPA_CALLBACK = 'http://localhost:5173/callback';
const REQUEST_URI_PREFIX = 'urn:ietf:params:oauth:request_uri:';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

describe.each(['postgres', 'postgres+redis'] as const)('pushed authorization requests, RFC 9126 (%s)', (setup) => {
  let idp: TestServer;
  // One browser for the suite: Alice types her password once (bcrypt), later sign-ins ride her session.
  const session = new Browser();
  let web: RelyingParty;
  let spa: RelyingParty;

  beforeAll(async () => {
    idp = await startTestServer(setup);
    await idp.createUser({ ...alice, name: 'Alice Example' });
    web = await relyingParty(idp.issuer, await idp.registerClient({ client_id: 'web', redirect_uris: [WEB_CALLBACK], first_party: true }));
    spa = await relyingParty(
      idp.issuer,
      await idp.registerClient({ client_id: 'spa', token_endpoint_auth_method: 'none', redirect_uris: [SPA_CALLBACK], first_party: true }),
    );
    await idp.registerClient({ client_id: 'partner', redirect_uris: ['https://partner.example/callback'] });
  });

  afterAll(async () => {
    await idp?.stop();
  });

  /** Pushes an authorization request with openid-client; the URL it answers is what the browser is sent to. */
  async function pushed(rp: RelyingParty, scope: string, options: oidc.DPoPOptions = {}): Promise<AuthorizationRequest> {
    const { parameters, ...checks } = await authorizationParameters(rp, scope);
    return { url: (await oidc.buildAuthorizationUrlWithPAR(rp.config, parameters, options)).toString(), ...checks };
  }

  const exchange = (rp: RelyingParty, request: AuthorizationRequest, callback: string, options: oidc.DPoPOptions = {}) =>
    oidc.authorizationCodeGrant(
      rp.config,
      new URL(callback),
      { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true },
      undefined,
      options,
    );

  /** The authorization endpoint's answer to a request_uri (an error page: no redirect URI is known). */
  async function authorize(clientId: string, requestUri: string, browser = new Browser()) {
    return browser.request(`${idp.issuer}/auth?${new URLSearchParams({ client_id: clientId, request_uri: requestUri })}`);
  }

  /** Moves a pushed request past its expiry in its store, as 61 seconds would. */
  async function age(requestUri: string): Promise<void> {
    // Both stores keep a pushed request under a hash of its id, never the id (adapters' credential-ids.ts).
    const id = createHash('sha256').update(requestUri.slice(REQUEST_URI_PREFIX.length)).digest('base64url');
    const past = Math.floor(Date.now() / 1000) - 1;
    if (setup === 'postgres+redis') {
      const redis = new Redis(TEST_REDIS_URL);
      try {
        const key = `${idp.server.config.redis!.keyPrefix}PushedAuthorizationRequest:${id}`;
        const stored = await redis.hget(key, 'payload');
        expect(stored).not.toBeNull();
        const payload = JSON.parse(stored!) as Record<string, unknown>;
        // The key itself is left to live: the provider's own check of exp is what refuses it.
        await redis.hset(key, 'payload', JSON.stringify({ ...payload, exp: past }));
      } finally {
        redis.disconnect();
      }
      return;
    }
    const updated = await idp.server.database.db
      .updateTable('oidc_models')
      .set({ expires_at: sql<Date>`now() - interval '1 second'`, payload: sql`jsonb_set(payload, '{exp}', to_jsonb(${past}::int))` })
      .where('model', '=', 'PushedAuthorizationRequest')
      .where('id', '=', id)
      .executeTakeFirst();
    expect(Number(updated.numUpdatedRows)).toBe(1);
  }

  it('is advertised in discovery and not required: a client may push its request or send it in the URL', async () => {
    const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery['pushed_authorization_request_endpoint']).toBe(`${idp.issuer}/request`);
    expect(discovery['require_pushed_authorization_requests'] ?? false).toBe(false);
    // request_uri values other than pushed ones are not fetched.
    expect(discovery['request_uri_parameter_supported']).toBe(false);
    // The same metadata for OAuth clients (RFC 8414).
    const oauthMetadata = (await (await fetch(`${idp.issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(oauthMetadata).toEqual(discovery);
  });

  it('signs in with a pushed request: the browser carries only client_id and request_uri; the tokens are valid', async () => {
    const request = await pushed(web, 'openid email offline_access');
    const url = new URL(request.url);
    expect([...url.searchParams.keys()].sort()).toEqual(['client_id', 'request_uri']);
    expect(url.searchParams.get('request_uri')).toMatch(new RegExp(`^${REQUEST_URI_PREFIX}`));

    const callback = await signIn(session, idp.issuer, request, web.redirectUri, alice);
    expect(callback.status).toBe(303);
    expect(new URL(callback.location!).searchParams.get('iss')).toBe(idp.issuer);
    const tokens = await exchange(web, request, callback.location!);
    const claims = tokens.claims()!;
    expect(claims).toMatchObject({ iss: idp.issuer, aud: 'web', email: alice.email, amr: ['pwd'] });
    // A password alone is the password level (docs/conformance.md, amr and acr).
    expect(claims['acr']).toBe('urn:jobswipe:acr:pwd');
    expect(tokens.refresh_token).toEqual(expect.any(String));
    expect(await oidc.fetchUserInfo(web.config, tokens.access_token, claims.sub)).toMatchObject({ sub: claims.sub, email: alice.email });
    // The ID token of a refresh tells how the user signed in too.
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token!);
    expect(refreshed.claims()).toMatchObject({ sub: claims.sub, amr: ['pwd'], acr: 'urn:jobswipe:acr:pwd' });
  });

  it('lets a public client push too, and binds the code to the DPoP key of the push', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const other = await oidc.randomDPoPKeyPair('ES256');
    const request = await pushed(spa, 'openid', { DPoP: oidc.getDPoPHandle(spa.config, key) });
    const callback = (await signIn(session, idp.issuer, request, spa.redirectUri, alice)).location!;
    expect(await oauthError(exchange(spa, request, callback, { DPoP: oidc.getDPoPHandle(spa.config, other) }))).toBe('invalid_grant');

    const again = await pushed(spa, 'openid', { DPoP: oidc.getDPoPHandle(spa.config, key) });
    const tokens = await exchange(spa, again, (await signIn(session, idp.issuer, again, spa.redirectUri, alice)).location!, {
      DPoP: oidc.getDPoPHandle(spa.config, key),
    });
    expect(tokens.token_type).toBe('dpop');
    expect(decodeJwt(tokens.id_token!)['aud']).toBe('spa');
  });

  it('takes the pushed parameters only: a redirect_uri or scope added to the URL is ignored', async () => {
    const request = await pushed(web, 'openid');
    const url = new URL(request.url);
    url.searchParams.set('redirect_uri', 'https://elsewhere.example/callback');
    url.searchParams.set('scope', 'openid email');
    const callback = await signIn(session, idp.issuer, { ...request, url: url.toString() }, web.redirectUri, alice);
    expect(callback.status).toBe(303);
    expect(callback.location!.startsWith(`${WEB_CALLBACK}?`)).toBe(true);
    const tokens = await exchange(web, request, callback.location!);
    expect(tokens.claims()).not.toHaveProperty('email');
  });

  it('refuses a request_uri used a second time, once its code was issued', async () => {
        const request = await pushed(web, 'openid');
    const callback = await signIn(session, idp.issuer, request, web.redirectUri, alice);
    expect(callback.status).toBe(303);
    const requestUri = new URL(request.url).searchParams.get('request_uri')!;
    // The same browser, signed in: only the used request_uri stands between it and a second code.
    const second = await authorize('web', requestUri, session);
    expect(second.status).toBe(400);
    expect(second.location).toBeUndefined();
    expect(second.body).toContain('invalid_request_uri');
    await exchange(web, request, callback.location!);
  });

  it('refuses an unknown request_uri, one past its 60 seconds, and one pushed by another client', async () => {
    const unknown = await authorize('web', `${REQUEST_URI_PREFIX}${'A'.repeat(43)}`);
    expect(unknown.status).toBe(400);
    expect(unknown.body).toContain('invalid_request_uri');

    const fresh = await pushed(web, 'openid');
    const requestUri = new URL(fresh.url).searchParams.get('request_uri')!;
    expect((await authorize('partner', requestUri)).status).toBe(400);

    await age(requestUri);
    const expired = await authorize('web', requestUri);
    expect(expired.status).toBe(400);
    expect(expired.body).toContain('invalid_request_uri');
  });

  it('holds a client registered with require_pushed_authorization_requests to pushing', async () => {
    const strict = await relyingParty(
      idp.issuer,
      await idp.registerClient({ client_id: 'strict', redirect_uris: [WEB_CALLBACK], first_party: true, require_pushed_authorization_requests: true }),
    );
    const plain = oidc.buildAuthorizationUrl(strict.config, {
      redirect_uri: WEB_CALLBACK,
      scope: 'openid',
      code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    });
    const refused = await session.request(plain.toString());
    expect(refused.status).toBe(303);
    expect(new URL(refused.location!).searchParams.get('error')).toBe('invalid_request');

    const request = await pushed(strict, 'openid');
    const callback = await signIn(session, idp.issuer, request, WEB_CALLBACK, alice);
    expect((await exchange(strict, request, callback.location!)).claims()!['aud']).toBe('strict');
  });

  it('answers the push with 201, expires_in 60 and a request_uri; refuses a push that itself carries request_uri, or bad credentials', async () => {
    const secret = String(web.config.clientMetadata().client_secret);
    const push = (params: Record<string, string>, password = secret) =>
      fetch(`${idp.issuer}/request`, {
        method: 'POST',
        headers: { authorization: `Basic ${Buffer.from(`web:${password}`).toString('base64')}`, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          client_id: 'web',
          response_type: 'code',
          scope: 'openid',
          redirect_uri: WEB_CALLBACK,
          code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
          code_challenge_method: 'S256',
          ...params,
        }),
      });
    const accepted = await push({});
    expect(accepted.status).toBe(201);
    expect(await accepted.json()).toMatchObject({ expires_in: 60, request_uri: expect.stringMatching(new RegExp(`^${REQUEST_URI_PREFIX}`)) });

    // RFC 9126 §2.1: request_uri MUST NOT be pushed (the provider names the refusal request_uri_not_supported).
    const nested = await push({ request_uri: `${REQUEST_URI_PREFIX}x` });
    expect(nested.status).toBe(400);
    expect(await nested.json()).toMatchObject({ error: 'request_uri_not_supported' });
    const unregistered = await push({ redirect_uri: 'https://elsewhere.example/callback' });
    expect(unregistered.status).toBe(400);
    expect(await unregistered.json()).toMatchObject({ error: 'invalid_request' });
    const wrongSecret = await push({}, 'not-the-secret');
    expect(wrongSecret.status).toBe(401);
    expect(await wrongSecret.json()).toMatchObject({ error: 'invalid_client' });
  });
});
