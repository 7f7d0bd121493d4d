import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, createRemoteJWKSet, decodeJwt, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { authorizationRequest, oauthError, relyingParty, signIn, type AuthorizationRequest, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, TEST_REDIS_URL, type TestServer } from '../../../test/support/server.ts';

/*
 * DPoP (RFC 9449) end to end: openid-client as the relying party where it can be, hand-made proofs
 * where a test needs a proof a well-behaved client would never send (replayed, for another URL, old).
 * ReplayDetection (the jti store) lives in the database on Postgres alone, in Redis with Redis.
 */

const API = 'urn:jobswipe:api';
const SPA_CALLBACK = 'http://localhost:5173/callback';
const WEB_CALLBACK = 'http://localhost:3000/callback';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

type KeyPair = oidc.CryptoKeyPair;

const thumbprintOf = async (key: KeyPair) => calculateJwkThumbprint(await exportJWK(key.publicKey));

/** A DPoP proof as RFC 9449 §4.2 describes it; `claims` overrides any of its claims (a bad proof). */
async function proof(key: KeyPair, htm: string, htu: string, options: { accessToken?: string; claims?: Record<string, unknown>; typ?: string } = {}) {
  const ath = options.accessToken ? createHash('sha256').update(options.accessToken).digest('base64url') : undefined;
  return new SignJWT({ htm, htu, jti: randomUUID(), iat: Math.floor(Date.now() / 1000), ...(ath ? { ath } : {}), ...options.claims })
    .setProtectedHeader({ alg: 'ES256', typ: options.typ ?? 'dpop+jwt', jwk: await exportJWK(key.publicKey) })
    .sign(key.privateKey);
}

interface Answer {
  status: number;
  body: Record<string, unknown>;
  headers: Headers;
}

async function answerOf(response: Response): Promise<Answer> {
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

describe.each(['postgres', 'postgres+redis'] as const)('DPoP, RFC 9449 (%s)', (setup) => {
  let idp: TestServer;
  // One browser for the suite: Alice types her password once (bcrypt), later sign-ins ride her session.
  const session = new Browser();
  // A browser app: a public client, the case RFC 9449 binds refresh tokens for.
  let spa: RelyingParty;
  let web: RelyingParty;
  let tokenUrl: string;
  let userinfoUrl: string;

  beforeAll(async () => {
    idp = await startTestServer(setup);
    await idp.createUser({ ...alice, name: 'Alice Example' });
    spa = await relyingParty(
      idp.issuer,
      await idp.registerClient({ client_id: 'spa', token_endpoint_auth_method: 'none', redirect_uris: [SPA_CALLBACK], first_party: true }),
    );
    web = await relyingParty(idp.issuer, await idp.registerClient({ client_id: 'web', redirect_uris: [WEB_CALLBACK], first_party: true }));
    tokenUrl = `${idp.issuer}/token`;
    userinfoUrl = `${idp.issuer}/me`;
  });

  afterAll(async () => {
    await idp?.stop();
  });

  /** Signs Alice in and redeems the code with a proof of `key`. */
  async function signedIn(rp: RelyingParty, scope: string, key: KeyPair, extra: Record<string, string> = {}) {
    const request = await authorizationRequest(rp, scope, extra);
    const callback = await signIn(session, idp.issuer, request, rp.redirectUri, alice);
    expect(callback.status).toBe(303);
    return { request, callback: callback.location!, tokens: await redeem(rp, request, callback.location!, key) };
  }

  const redeem = (rp: RelyingParty, request: AuthorizationRequest, callback: string, key: KeyPair) =>
    oidc.authorizationCodeGrant(
      rp.config,
      new URL(callback),
      { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true },
      undefined,
      { DPoP: oidc.getDPoPHandle(rp.config, key) },
    );

  /** A refresh of the public client, by hand: `dpop` is the proof sent, if any. */
  const refreshSpa = async (refreshToken: string, dpop?: string) =>
    answerOf(
      await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop ? { dpop } : {}) },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: 'spa' }),
      }),
    );

  const userinfo = async (authorization: string, dpop?: string) =>
    answerOf(await fetch(userinfoUrl, { headers: { authorization, ...(dpop ? { dpop } : {}) } }));

  it('is advertised in discovery with the asymmetric algorithms it verifies', async () => {
    const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery['dpop_signing_alg_values_supported']).toEqual(['ES256', 'Ed25519', 'EdDSA']);
  });

  it('binds the access token to the key at the code exchange: token_type DPoP, a JWT with cnf.jkt the key thumbprint', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid offline_access api:read', key);
    // openid-client lowercases token_type; the raw answers below show the provider's `DPoP`.
    expect(tokens.token_type).toBe('dpop');
    const { payload, protectedHeader } = await jwtVerify(tokens.access_token, createRemoteJWKSet(new URL(`${idp.issuer}/jwks`)), {
      issuer: idp.issuer,
      audience: API,
      typ: 'at+jwt',
    });
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload['cnf']).toEqual({ jkt: await thumbprintOf(key) });
    expect(payload).toMatchObject({ client_id: 'spa', scope: 'api:read' });
    // The ID token is not sender-constrained: it is a statement to the client, not a credential.
    expect(decodeJwt(tokens.id_token!)['cnf']).toBeUndefined();
  });

  it('answers userinfo with a proof of the key; as Bearer, without a proof or with another key it is refused', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid email offline_access', key);
    const sub = tokens.claims()!.sub;
    const answer = await oidc.fetchUserInfo(spa.config, tokens.access_token, sub, { DPoP: oidc.getDPoPHandle(spa.config, key) });
    expect(answer).toMatchObject({ sub, email: alice.email });

    const bearer = await userinfo(`Bearer ${tokens.access_token}`);
    expect(bearer.status).toBe(401);
    expect(bearer.body).toMatchObject({ error: 'invalid_token' });
    expect(bearer.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);

    const noProof = await userinfo(`DPoP ${tokens.access_token}`);
    expect(noProof.status).toBe(400);
    expect(noProof.body).toMatchObject({ error: 'invalid_request' });

    const other = await oidc.randomDPoPKeyPair('ES256');
    const otherKey = await userinfo(`DPoP ${tokens.access_token}`, await proof(other, 'GET', userinfoUrl, { accessToken: tokens.access_token }));
    expect(otherKey.status).toBe(401);
    expect(otherKey.body).toMatchObject({ error: 'invalid_token' });

    // A proof of the right key that names another access token (ath) is not a proof for this one.
    const wrongAth = await userinfo(`DPoP ${tokens.access_token}`, await proof(key, 'GET', userinfoUrl, { accessToken: 'another token' }));
    expect(wrongAth.status).toBe(401);
    expect(wrongAth.body).toMatchObject({ error: 'invalid_dpop_proof' });
    expect(wrongAth.headers.get('www-authenticate')).toMatch(/^DPoP .*error="invalid_dpop_proof"/);

    // The same request with a fresh proof of the right key: the refusals above were for their one change.
    const right = await userinfo(`DPoP ${tokens.access_token}`, await proof(key, 'GET', userinfoUrl, { accessToken: tokens.access_token }));
    expect(right.status).toBe(200);
    expect(right.body).toMatchObject({ sub });
  });

  it("keeps a public client's refresh token bound to the key: the same key refreshes, another key or no proof is refused", async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const other = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid offline_access api:read', key);
    const first = tokens.refresh_token!;

    const otherKey = await refreshSpa(first, await proof(other, 'POST', tokenUrl));
    expect(otherKey.status).toBe(400);
    expect(otherKey.body).toMatchObject({ error: 'invalid_grant' });
    const noProof = await refreshSpa(first);
    expect(noProof.status).toBe(400);
    expect(noProof.body).toMatchObject({ error: 'invalid_grant' });

    // Those refusals used nothing up: the holder of the key still refreshes (and the grant lives).
    const refreshed = await refreshSpa(first, await proof(key, 'POST', tokenUrl));
    expect(refreshed.status).toBe(200);
    expect(refreshed.body['token_type']).toBe('DPoP');
    expect(decodeJwt(String(refreshed.body['access_token']))['cnf']).toEqual({ jkt: await thumbprintOf(key) });
    const second = String(refreshed.body['refresh_token']);
    expect(second).not.toBe(first);

    // The rotated refresh token is bound to the same key.
    expect((await refreshSpa(second, await proof(other, 'POST', tokenUrl))).body).toMatchObject({ error: 'invalid_grant' });
    const again = await oidc.refreshTokenGrant(spa.config, second, undefined, { DPoP: oidc.getDPoPHandle(spa.config, key) });
    expect(again.token_type).toBe('dpop');
  });

  it("gives a public client's bound refresh token no reuse grace period: its second use revokes the grant", async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid offline_access', key);
    const refreshed = await refreshSpa(tokens.refresh_token!, await proof(key, 'POST', tokenUrl));
    expect(refreshed.status).toBe(200);
    // A kept answer would hand out tokens without checking this request's proof: none is kept.
    expect((await refreshSpa(tokens.refresh_token!, await proof(key, 'POST', tokenUrl))).body).toMatchObject({ error: 'invalid_grant' });
    expect((await refreshSpa(String(refreshed.body['refresh_token']), await proof(key, 'POST', tokenUrl))).body).toMatchObject({ error: 'invalid_grant' });
  });

  it("binds a confidential client's access tokens only: its refresh token is held by client authentication (RFC 9449 §5)", async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(web, 'openid offline_access', key);
    const introspected = await oidc.tokenIntrospection(web.config, tokens.access_token);
    expect(introspected).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: await thumbprintOf(key) } });

    // A new key (the client rotated it): the refresh works and the new access token is bound to it.
    const next = await oidc.randomDPoPKeyPair('ES256');
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token!, undefined, { DPoP: oidc.getDPoPHandle(web.config, next) });
    expect(refreshed.token_type).toBe('dpop');
    expect(await oidc.tokenIntrospection(web.config, refreshed.access_token)).toMatchObject({ cnf: { jkt: await thumbprintOf(next) } });
    // Without a proof the client gets a Bearer token, as any client that does not use DPoP.
    const bearer = await oidc.refreshTokenGrant(web.config, refreshed.refresh_token!);
    expect(bearer.token_type).toBe('bearer');
  });

  it('holds a client registered with dpop_bound_access_tokens to DPoP: a code exchange or refresh without a proof is refused', async () => {
    const bound = await relyingParty(
      idp.issuer,
      await idp.registerClient({ client_id: 'bound', redirect_uris: ['http://localhost:3002/callback'], first_party: true, dpop_bound_access_tokens: true }),
    );
    const key = await oidc.randomDPoPKeyPair('ES256');
    const request = await authorizationRequest(bound, 'openid offline_access');
    const callback = (await signIn(session, idp.issuer, request, bound.redirectUri, alice)).location!;
    const checks = { pkceCodeVerifier: request.verifier, expectedState: request.state, expectedNonce: request.nonce, idTokenExpected: true };
    expect(await oauthError(oidc.authorizationCodeGrant(bound.config, new URL(callback), checks))).toBe('invalid_grant');

    const again = await authorizationRequest(bound, 'openid offline_access');
    const tokens = await redeem(bound, again, (await signIn(session, idp.issuer, again, bound.redirectUri, alice)).location!, key);
    expect(tokens.token_type).toBe('dpop');
    expect(await oauthError(oidc.refreshTokenGrant(bound.config, tokens.refresh_token!))).toBe('invalid_grant');
    const refreshed = await oidc.refreshTokenGrant(bound.config, tokens.refresh_token!, undefined, { DPoP: oidc.getDPoPHandle(bound.config, key) });
    expect(refreshed.token_type).toBe('dpop');
  });

  it('binds the authorization code to dpop_jkt: the code exchange with another key or without a proof is refused (RFC 9449 §10)', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const other = await oidc.randomDPoPKeyPair('ES256');
    const boundCode = async () => {
      const request = await authorizationRequest(spa, 'openid', { dpop_jkt: await thumbprintOf(key) });
      const callback = (await signIn(session, idp.issuer, request, spa.redirectUri, alice)).location!;
      return { request, callback };
    };
    const exchange = async ({ request, callback }: Awaited<ReturnType<typeof boundCode>>, dpop?: string) =>
      answerOf(
        await fetch(tokenUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...(dpop ? { dpop } : {}) },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            code: new URL(callback).searchParams.get('code')!,
            redirect_uri: SPA_CALLBACK,
            code_verifier: request.verifier,
            client_id: 'spa',
          }),
        }),
      );

    const first = await boundCode();
    expect((await exchange(first, await proof(other, 'POST', tokenUrl))).body).toMatchObject({ error: 'invalid_grant' });
    // A code is used once, whatever the outcome: the refused exchange spent it.
    expect((await exchange(first, await proof(key, 'POST', tokenUrl))).body).toMatchObject({ error: 'invalid_grant' });
    expect((await exchange(await boundCode())).body).toMatchObject({ error: 'invalid_grant' });
    const last = await boundCode();
    const tokens = await redeem(spa, last.request, last.callback, key);
    expect(tokens.token_type).toBe('dpop');
  });

  it('refuses a replayed proof (the same jti) at userinfo and at the token endpoint; the refused request uses nothing up', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid offline_access', key);

    const atUserinfo = await proof(key, 'GET', userinfoUrl, { accessToken: tokens.access_token });
    expect((await userinfo(`DPoP ${tokens.access_token}`, atUserinfo)).status).toBe(200);
    const replayed = await userinfo(`DPoP ${tokens.access_token}`, atUserinfo);
    expect(replayed.status).toBe(401);
    expect(replayed.body).toMatchObject({ error: 'invalid_token', error_description: 'invalid token provided' });

    const atToken = await proof(key, 'POST', tokenUrl);
    const refreshed = await refreshSpa(tokens.refresh_token!, atToken);
    expect(refreshed.status).toBe(200);
    const successor = String(refreshed.body['refresh_token']);
    const replayedAtToken = await refreshSpa(successor, atToken);
    expect(replayedAtToken.status).toBe(400);
    expect(replayedAtToken.body).toMatchObject({ error: 'invalid_grant' });
    // The successor was not spent by the refused replay.
    expect((await refreshSpa(successor, await proof(key, 'POST', tokenUrl))).status).toBe(200);
  });

  it('accepts one of 10 concurrent requests carrying the same proof', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid offline_access', key);
    const same = await proof(key, 'GET', userinfoUrl, { accessToken: tokens.access_token });
    const answers = await Promise.all(Array.from({ length: 10 }, () => userinfo(`DPoP ${tokens.access_token}`, same)));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, ...Array<number>(9).fill(401)]);
  });

  it('remembers a jti for as long as its proof could be accepted: iat may be five minutes ahead, then five more', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const { tokens } = await signedIn(spa, 'openid offline_access', key);
    const jti = randomUUID();
    const ahead = await proof(key, 'GET', userinfoUrl, { accessToken: tokens.access_token, claims: { jti, iat: Math.floor(Date.now() / 1000) + 290 } });
    expect((await userinfo(`DPoP ${tokens.access_token}`, ahead)).status).toBe(200);
    // The provider's record of the jti (its id: a hash of the client and the jti).
    const id = createHash('sha256').update(`spa${jti}`).digest('base64url');
    let lifetime: number;
    if (setup === 'postgres+redis') {
      const redis = new Redis(TEST_REDIS_URL);
      try {
        lifetime = await redis.ttl(`${idp.server.config.redis!.keyPrefix}ReplayDetection:${id}`);
      } finally {
        redis.disconnect();
      }
    } else {
      const row = await idp.server.database.db
        .selectFrom('oidc_models')
        .select(sql<number>`extract(epoch from expires_at - now())`.as('seconds'))
        .where('model', '=', 'ReplayDetection')
        .where('id', '=', id)
        .executeTakeFirstOrThrow();
      lifetime = Number(row.seconds);
    }
    // Accepted until iat + 300 s, that is about 590 s from now.
    expect(lifetime).toBeGreaterThanOrEqual(585);
    expect((await userinfo(`DPoP ${tokens.access_token}`, ahead)).status).toBe(401);
  });

  it('refuses a proof for another URL or method, too old, of the wrong type, with a nonce or badly signed, with invalid_dpop_proof', async () => {
    const key = await oidc.randomDPoPKeyPair('ES256');
    const other = await oidc.randomDPoPKeyPair('ES256');
    const rsa = await generateKeyPair('RS256');
    const { tokens } = await signedIn(spa, 'openid offline_access', key);
    const now = Math.floor(Date.now() / 1000);
    const badProofs: Array<[string, string]> = [
      ['htu of another endpoint', await proof(key, 'POST', userinfoUrl)],
      ['htu of another host', await proof(key, 'POST', 'https://elsewhere.example/token')],
      ['htm GET', await proof(key, 'GET', tokenUrl)],
      ['iat ten minutes ago', await proof(key, 'POST', tokenUrl, { claims: { iat: now - 600 } })],
      ['iat ten minutes ahead', await proof(key, 'POST', tokenUrl, { claims: { iat: now + 600 } })],
      ['no jti', await proof(key, 'POST', tokenUrl, { claims: { jti: undefined } })],
      ['typ JWT', await proof(key, 'POST', tokenUrl, { typ: 'JWT' })],
      // No server nonces are issued (docs/conformance.md), so none can be right.
      ['a nonce', await proof(key, 'POST', tokenUrl, { claims: { nonce: 'chosen-by-the-client' } })],
      // Signed with one key, naming another in its header.
      ['signature of another key', await new SignJWT({ htm: 'POST', htu: tokenUrl, jti: randomUUID(), iat: now })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: await exportJWK(key.publicKey) })
        .sign(other.privateKey)],
      // An algorithm dpop_signing_alg_values_supported does not list.
      ['RS256', await new SignJWT({ htm: 'POST', htu: tokenUrl, jti: randomUUID(), iat: now })
        .setProtectedHeader({ alg: 'RS256', typ: 'dpop+jwt', jwk: await exportJWK(rsa.publicKey) })
        .sign(rsa.privateKey)],
    ];
    for (const [name, bad] of badProofs) {
      const answer = await refreshSpa(tokens.refresh_token!, bad);
      expect(answer.status, name).toBe(400);
      expect(answer.body['error'], name).toBe('invalid_dpop_proof');
    }
    const atUserinfo = await userinfo(`DPoP ${tokens.access_token}`, await proof(key, 'POST', userinfoUrl, { accessToken: tokens.access_token }));
    expect(atUserinfo.status).toBe(401);
    expect(atUserinfo.headers.get('www-authenticate')).toMatch(/^DPoP .*error="invalid_dpop_proof"/);
    // Nothing above spent the refresh token.
    expect((await refreshSpa(tokens.refresh_token!, await proof(key, 'POST', tokenUrl))).status).toBe(200);
  });
});
