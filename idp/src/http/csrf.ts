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

/** What a form without a valid token is answered, ours or the provider's (http/provider-forms.ts). */
export const FORM_REFUSED = {
  status: 403,
  title: 'This form has expired',
  message: 'For your security we could not accept this form. Go back, reload the page and try again.',
} as const;

/** A missing, empty, doubled (an array) or wrong token is refused alike. */
export function verifyCsrfToken(ctx: Context, token: unknown): void {
  const secret = ctx.cookies.get(COOKIE, { signed: true });
  if (!secret || typeof token !== 'string' || !token || !tokens.verify(secret, token)) {
    throw new HttpError(FORM_REFUSED.status, FORM_REFUSED.title, FORM_REFUSED.message);
  }
}
