/*
 * What a finished sign-in tells the provider, and through it every relying party: the methods used
 * (`amr`, RFC 8176) and the level they add up to (`acr`). Every way of signing in (password, passkey,
 * an upstream identity provider, a second factor after any of them) ends in loginResult, so the ID
 * token's acr follows from its amr by one rule.
 */

/** The authentication context classes we issue (discovery's acr_values_supported). */
export const ACR = {
  /** Two factors, or a passkey with user verification. */
  mfa: 'urn:jobswipe:acr:mfa',
  /** One factor: a password, or an upstream identity provider. */
  pwd: 'urn:jobswipe:acr:pwd',
} as const;

export const ACR_VALUES: string[] = [ACR.pwd, ACR.mfa];

/**
 * RFC 8176 values, and `fed` (an upstream identity provider):
 * - `pwd` a password; `otp` a code from an authenticator app or a recovery code;
 * - `hwk` a passkey (proof of a key held in hardware) and `user` its user verification (PIN or biometric);
 * - `mfa` more than one step: a second factor after the first.
 */
export type AuthenticationMethod = 'pwd' | 'otp' | 'hwk' | 'user' | 'mfa' | 'fed';

/** The `login` of an interaction result: oidc-provider keeps it in the session and puts acr/amr in ID tokens. */
export interface LoginResult {
  accountId: string;
  amr: AuthenticationMethod[];
  acr: string;
  ts: number;
}

const ORDER: AuthenticationMethod[] = ['fed', 'pwd', 'hwk', 'user', 'otp', 'mfa'];

/**
 * A passkey with user verification is two factors by itself (the device, and the PIN or biometric
 * that unlocks it), so it reaches the mfa level without `mfa` in amr: that value says the user took
 * a second step after the first.
 */
export function acrOf(amr: readonly AuthenticationMethod[]): string {
  return amr.includes('mfa') || (amr.includes('hwk') && amr.includes('user')) ? ACR.mfa : ACR.pwd;
}

/** The methods of a first step followed by a second factor (`otp`, or `hwk` + `user`): `mfa` added. */
export function withSecondFactor(first: readonly AuthenticationMethod[], second: readonly AuthenticationMethod[]): AuthenticationMethod[] {
  return [...first, ...second, 'mfa'];
}

export function loginResult(accountId: string, methods: readonly AuthenticationMethod[], now: Date = new Date()): LoginResult {
  const amr = ORDER.filter((method) => methods.includes(method));
  return { accountId, amr, acr: acrOf(amr), ts: Math.floor(now.getTime() / 1000) };
}

/**
 * Whether an authorization request insists on two factors: its acr_values name the mfa level and not
 * the password level (a request listing both is satisfied by either).
 */
export function requiresMfa(acrValues: unknown): boolean {
  if (typeof acrValues !== 'string') return false;
  const values = acrValues.split(' ').filter(Boolean);
  return values.includes(ACR.mfa) && !values.includes(ACR.pwd);
}

/** Whether a session's sign-in satisfies a request (see requiresMfa). */
export function satisfies(acrValues: unknown, sessionAcr: unknown): boolean {
  return !requiresMfa(acrValues) || sessionAcr === ACR.mfa;
}
