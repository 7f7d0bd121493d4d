import type { JWT } from 'next-auth/jwt';

/** The provider's level for a sign-in with two factors, or a passkey (docs/mfa.md). */
export const MFA_ACR = 'urn:jobswipe:acr:mfa';

/** Where the step-up sends the browser back to, and what it asks the provider for. */
export const BILLING_PATH = '/billing';

/** Whether the session's sign-in reached two factors: the ID token the session started with says so. */
export function signedInWithTwoFactors(token: Pick<JWT, 'acr'> | null | undefined): boolean {
  return token?.acr === MFA_ACR;
}
