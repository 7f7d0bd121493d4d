import { randomUUID } from 'node:crypto';
import { importJWK, SignJWT, type CryptoKey, type JWK } from 'jose';

export const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** Logout tokens are short-lived: a relying party must act on them at once. */
export const LOGOUT_TOKEN_TTL_SECONDS = 120;

export interface LogoutSubject {
  clientId: string;
  sub: string;
  /** The session id the client saw in its ID token; absent when every session of `sub` ends. */
  sid?: string | undefined;
}

/** The private JWK that signs now (the keystore's current key). */
export type CurrentSigningKey = () => Promise<JWK>;

/**
 * Signs logout tokens (OpenID Connect Back-Channel Logout 1.0, section 2.4) with the provider's
 * current RS256 key: `typ` logout+jwt, iss, aud, iat, exp, jti, sub, sid, events, and never a nonce.
 */
export function createLogoutTokenSigner(issuer: string, currentKey: CurrentSigningKey) {
  const imported = new Map<string, CryptoKey | Uint8Array>();
  return async function sign(subject: LogoutSubject): Promise<string> {
    const jwk = await currentKey();
    if (!jwk.kid) throw new Error('the signing key has no kid');
    let key = imported.get(jwk.kid);
    if (!key) {
      key = await importJWK(jwk, 'RS256');
      imported.set(jwk.kid, key);
    }
    const claims: Record<string, unknown> = { events: { [BACKCHANNEL_LOGOUT_EVENT]: {} } };
    if (subject.sid) claims['sid'] = subject.sid;
    // One clock reading, so exp is always exactly iat + the lifetime.
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid: jwk.kid })
      .setIssuer(issuer)
      .setAudience(subject.clientId)
      .setSubject(subject.sub)
      .setIssuedAt(now)
      .setExpirationTime(now + LOGOUT_TOKEN_TTL_SECONDS)
      .setJti(randomUUID())
      .sign(key);
  };
}

export type LogoutTokenSigner = ReturnType<typeof createLogoutTokenSigner>;

/** The private key that signs now, out of the keystore's published set. */
export function currentKeyOf(jwks: { keys: JWK[] }): JWK {
  const key = jwks.keys.find((candidate) => !candidate.key_ops?.length || candidate.key_ops.includes('sign'));
  if (!key) throw new Error('no current signing key');
  return key;
}
