import { createHash, randomBytes } from 'node:crypto';
import type { ClientMetadata } from 'oidc-provider';

/**
 * The account pages sign users in through the provider like any app: this built-in, first-party
 * client is how /account starts an authorization request. It never redeems its codes; the sign-in
 * it exists for is the provider session the request leaves behind.
 */
export const ACCOUNT_CLIENT_ID = 'jobswipe-account';

export function accountClient(issuer: string): ClientMetadata {
  return {
    client_id: ACCOUNT_CLIENT_ID,
    client_name: 'JobSwipe account',
    application_type: 'web',
    token_endpoint_auth_method: 'none',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    redirect_uris: [`${issuer}/account/callback`],
    post_logout_redirect_uris: [`${issuer}/account`],
    first_party: true,
  };
}

/** The authorization request /account sends a signed-out visitor to. */
export function accountSignInUrl(issuer: string): string {
  // PKCE is required of public clients; the verifier is discarded because the code is never redeemed.
  const challenge = createHash('sha256').update(randomBytes(32).toString('base64url')).digest('base64url');
  const params = new URLSearchParams({
    client_id: ACCOUNT_CLIENT_ID,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: `${issuer}/account/callback`,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: randomBytes(16).toString('base64url'),
  });
  return `/auth?${params.toString()}`;
}
