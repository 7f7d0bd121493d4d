import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oauthError } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { STORE_KINDS } from '../../../test/support/stores.ts';

const MINUTE = 60;
const YEAR = 365 * 24 * 60 * MINUTE;
const now = () => Math.floor(Date.now() / 1000);

/** Sets the assertion's lifetime: `exp` seconds from now, and `iat` (undefined: left out) relative to now. */
type Lifetime = { exp: number; iat?: number | undefined };

const service = { grant_types: ['client_credentials'], redirect_uris: [], response_types: [], scope: 'api:read' };

describe.each(STORE_KINDS)('client assertion lifetime (%s)', (kind) => {
  let idp: TestServer;
  let privateKey: oidc.CryptoKey;
  let secret: string;

  beforeAll(async () => {
    idp = await startTestServer(kind);
    const pair = await generateKeyPair('RS256');
    privateKey = pair.privateKey;
    await idp.registerClient({ ...service, client_id: 'signer', token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: [{ ...(await exportJWK(pair.publicKey)), alg: 'RS256', use: 'sig' }] } });
    secret = String((await idp.registerClient({ ...service, client_id: 'hmac', token_endpoint_auth_method: 'client_secret_jwt' })).client_secret);
  });

  afterAll(async () => {
    await idp?.stop();
  });

  const lifetime = (wanted: Lifetime | undefined): oidc.ModifyAssertionOptions =>
    wanted === undefined
      ? {}
      : {
          [oidc.modifyAssertion]: (_header: unknown, payload: Record<string, unknown>) => {
            payload['exp'] = now() + wanted.exp;
            if (wanted.iat === undefined) delete payload['iat'];
            else payload['iat'] = now() + wanted.iat;
          },
        };

  async function tokenWith(clientId: 'signer' | 'hmac', wanted?: Lifetime) {
    const auth = clientId === 'signer' ? oidc.PrivateKeyJwt(privateKey, lifetime(wanted)) : oidc.ClientSecretJwt(secret, lifetime(wanted));
    const config = await oidc.discovery(new URL(idp.issuer), clientId, undefined, auth, { execute: [oidc.allowInsecureRequests] });
    return oidc.clientCredentialsGrant(config, { scope: 'api:read' });
  }

  it('accepts an ordinary assertion: openid-client\'s own, 1 minute, 5 minutes', async () => {
    expect((await tokenWith('signer')).access_token).toEqual(expect.any(String));
    expect((await tokenWith('signer', { exp: MINUTE, iat: 0 })).access_token).toEqual(expect.any(String));
    expect((await tokenWith('signer', { exp: 5 * MINUTE, iat: 0 })).access_token).toEqual(expect.any(String));
    expect((await tokenWith('hmac', { exp: 5 * MINUTE, iat: 0 })).access_token).toEqual(expect.any(String));
  });

  it('refuses with invalid_client an assertion that expires years ahead, with or without iat (private_key_jwt)', async () => {
    expect(await oauthError(tokenWith('signer', { exp: 10 * YEAR, iat: 0 }))).toBe('invalid_client');
    expect(await oauthError(tokenWith('signer', { exp: 11 * MINUTE }))).toBe('invalid_client');
  });

  it('refuses an assertion whose exp is more than 10 minutes after its iat, though it expires soon', async () => {
    expect(await oauthError(tokenWith('signer', { exp: MINUTE, iat: -20 * MINUTE }))).toBe('invalid_client');
  });

  it('refuses a long-lived client_secret_jwt assertion too', async () => {
    expect(await oauthError(tokenWith('hmac', { exp: YEAR, iat: 0 }))).toBe('invalid_client');
  });

  it('refuses an assertion presented a second time (its jti is single use, RFC 7523 §3)', async () => {
    const assertion = await new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuer('signer')
      .setSubject('signer')
      .setAudience(idp.issuer)
      .setIssuedAt()
      .setExpirationTime('1m')
      .sign(privateKey);
    const present = () =>
      fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          scope: 'api:read',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: assertion,
        }),
      });
    expect((await present()).status).toBe(200);
    const again = await present();
    expect(again.status).toBe(401);
    expect(await again.json()).toMatchObject({ error: 'invalid_client' });
  });
});
