import type { Context } from 'koa';
import type { AuthenticationMethod } from '../interactions/sign-in-result.ts';

/*
 * Between the first step of a sign-in (password, or an upstream identity provider) and its second
 * factor, the browser carries what the first step proved in a signed, HttpOnly cookie bound to the
 * interaction: only this server could have written it, and it is good for that interaction only,
 * for as long as the provider keeps the interaction.
 */

const COOKIE = 'jobswipe.signin';

export interface PendingSignIn {
  /** The interaction this first step belongs to. */
  uid: string;
  accountId: string;
  amr: AuthenticationMethod[];
  /** The second step done already (after enrolling a factor during the sign-in, the recovery codes are shown first). */
  second?: AuthenticationMethod[] | undefined;
  /** Epoch seconds. */
  expiresAt: number;
}

const METHODS = new Set<string>(['pwd', 'otp', 'hwk', 'user', 'mfa', 'fed']);
const isMethods = (value: unknown): value is AuthenticationMethod[] => Array.isArray(value) && value.every((method) => METHODS.has(method as string));

export function rememberFirstStep(ctx: Context, pending: Omit<PendingSignIn, 'expiresAt'>, lifetimeSeconds: number): void {
  const value: PendingSignIn = { ...pending, expiresAt: Math.floor(Date.now() / 1000) + lifetimeSeconds };
  ctx.cookies.set(COOKIE, Buffer.from(JSON.stringify(value)).toString('base64url'), {
    signed: true,
    httpOnly: true,
    sameSite: 'lax',
    secure: ctx.secure,
    path: '/interaction/',
    overwrite: true,
  });
}

/** The first step of this interaction's sign-in, if this browser has one that has not expired. */
export function firstStepOf(ctx: Context, uid: string): PendingSignIn | undefined {
  const raw = ctx.cookies.get(COOKIE, { signed: true });
  if (!raw) return undefined;
  let value: Partial<PendingSignIn>;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as Partial<PendingSignIn>;
  } catch {
    return undefined;
  }
  if (value.uid !== uid || typeof value.accountId !== 'string' || !isMethods(value.amr)) return undefined;
  if (typeof value.expiresAt !== 'number' || value.expiresAt < Date.now() / 1000) return undefined;
  if (value.second !== undefined && !isMethods(value.second)) return undefined;
  return value as PendingSignIn;
}

export function forgetFirstStep(ctx: Context): void {
  ctx.cookies.set(COOKIE, null, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/interaction/' });
}
