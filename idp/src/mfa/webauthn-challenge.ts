import type { Context } from 'koa';

/*
 * A WebAuthn challenge lives from the page that asks for a passkey to the form that answers it, in a
 * signed, HttpOnly cookie naming what it is for (registering for a user, or signing in in an
 * interaction). It is dropped when the answer is checked, right or wrong, and the answer spends the
 * challenge on the server (passkeys.ts): the same cookie and answer sent again are refused.
 */

const COOKIE = 'jobswipe.webauthn';
/** How long a challenge can be answered (and how long a spent one is remembered). */
export const CHALLENGE_LIFETIME_SECONDS = 5 * 60;

export type ChallengePurpose = 'register' | 'authenticate';

interface StoredChallenge {
  purpose: ChallengePurpose;
  /** A user id (register) or an interaction uid (authenticate). */
  boundTo: string;
  challenge: string;
  expiresAt: number;
}

export function keepChallenge(ctx: Context, purpose: ChallengePurpose, boundTo: string, challenge: string): void {
  const value: StoredChallenge = { purpose, boundTo, challenge, expiresAt: Math.floor(Date.now() / 1000) + CHALLENGE_LIFETIME_SECONDS };
  ctx.cookies.set(COOKIE, Buffer.from(JSON.stringify(value)).toString('base64url'), {
    signed: true,
    httpOnly: true,
    sameSite: 'lax',
    secure: ctx.secure,
    path: '/',
    overwrite: true,
  });
}

/** The challenge kept for this purpose and subject, once: the cookie is dropped whatever it held. */
export function takeChallenge(ctx: Context, purpose: ChallengePurpose, boundTo: string): string | undefined {
  const raw = ctx.cookies.get(COOKIE, { signed: true });
  ctx.cookies.set(COOKIE, null, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/' });
  if (!raw) return undefined;
  try {
    const value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<StoredChallenge>;
    if (value.purpose !== purpose || value.boundTo !== boundTo || typeof value.challenge !== 'string') return undefined;
    if (typeof value.expiresAt !== 'number' || value.expiresAt < Date.now() / 1000) return undefined;
    return value.challenge;
  } catch {
    return undefined;
  }
}
