import { errors, type KoaContextWithOIDC } from 'oidc-provider';

/** The longest a client assertion (private_key_jwt, client_secret_jwt) may live. */
export const CLIENT_ASSERTION_MAX_SECONDS = 10 * 60;

/**
 * configuration.assertJwtClientAuthClaimsAndHeader: an assertion valid for years is a stolen-key
 * credential that never dies (and its jti is kept for replay detection until it expires).
 */
export async function assertClientAssertionLifetime(_ctx: KoaContextWithOIDC, claims: Record<string, unknown>): Promise<void> {
  const { exp, iat } = claims;
  const now = Math.floor(Date.now() / 1000);
  if (typeof exp !== 'number' || exp - now > CLIENT_ASSERTION_MAX_SECONDS) {
    throw new errors.InvalidClientAuth(`client_assertion must expire within ${CLIENT_ASSERTION_MAX_SECONDS} seconds`);
  }
  if (typeof iat === 'number' && exp - iat > CLIENT_ASSERTION_MAX_SECONDS) {
    throw new errors.InvalidClientAuth(`client_assertion must not be valid for more than ${CLIENT_ASSERTION_MAX_SECONDS} seconds after its iat`);
  }
}
