import Tokens from 'csrf';
import type { Context } from 'koa';
import { HttpError } from './errors.ts';

const tokens = new Tokens();
const COOKIE = 'jobswipe.csrf';

/**
 * Synchronizer tokens for our forms: a secret in a signed, HttpOnly cookie and a per-form token
 * derived from it. A cross-site form post cannot read the cookie, so it cannot forge the token.
 */
export function issueCsrfToken(ctx: Context): string {
  let secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret) {
    secret = tokens.secretSync();
    ctx.cookies.set(COOKIE, secret, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/', overwrite: true });
  }
  return tokens.create(secret);
}

export function verifyCsrfToken(ctx: Context, token: string | undefined): void {
  const secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret || !token || !tokens.verify(secret, token)) {
    throw new HttpError(
      403,
      'This form has expired',
      'For your security we could not accept this form. Go back, reload the page and try again.',
    );
  }
}
