import { randomFillSync } from 'node:crypto';
import type { Context, Middleware } from 'koa';

export interface SecurityHeaderOptions {
  /** Sends Strict-Transport-Security (the production issuer is https; a development one is not). */
  production: boolean;
}

/** Two years, subdomains included: the value HSTS preload lists ask for. */
export const HSTS = 'max-age=63072000; includeSubDomains';

/** Where a page's script nonce is kept for the page to use (`<script nonce="...">`). */
export const CSP_NONCE_STATE = 'cspNonce';

const NONCE_BYTES = 16;
const nonceBytes = Buffer.alloc(NONCE_BYTES * 256);
let nonceOffset = nonceBytes.length;

/**
 * A fresh script nonce: 16 bytes from the CSPRNG, base64. The bytes are drawn from a buffer refilled
 * every 256 nonces (one call into the CSPRNG instead of one per request); none is handed out twice.
 */
export function newCspNonce(): string {
  if (nonceOffset >= nonceBytes.length) {
    randomFillSync(nonceBytes);
    nonceOffset = 0;
  }
  const nonce = nonceBytes.toString('base64', nonceOffset, nonceOffset + NONCE_BYTES);
  nonceOffset += NONCE_BYTES;
  return nonce;
}

/** The per-request script nonce (base64 of 16 random bytes) for pages that need an inline script. */
export function cspNonceOf(ctx: Context): string {
  return ctx.state[CSP_NONCE_STATE] as string;
}

/**
 * Pages whose forms post to, and are redirected within, this origin only: they get
 * `form-action 'self'`. Everything else, the sign-in flow above all, gets no form-action.
 *
 * Chromium checks form-action against every redirect that follows a form submission, not just
 * the form's own action. Seen in headless Chromium 156 with form-action 'self' on every page: the
 * redirect to the app is aborted (the console names the form's own URL as the blocked target) and
 * the sign-in in idp/test/security/headers.test.ts stops on the login page. Hence:
 * - login or consent: POST /interaction/:uid/... → 303 /auth/:uid → 303 the client's
 *   redirect_uri, an origin of the client's choosing; under form-action 'self' Chromium stops
 *   the last hop and the user never reaches the app;
 * - logout confirmation: POST /session/end/confirm → 303 the client's post_logout_redirect_uri;
 * - oidc-provider's own response_mode=form_post page posts straight to the client's
 *   redirect_uri, and its "logout without a session" page auto-submits to /session/end/confirm,
 *   which then redirects to the client.
 * The origins allowed there depend on the client and the request, and the pages are rendered by
 * the provider or by interaction code that this middleware cannot see; form-action does not fall
 * back to default-src, so leaving it out allows any target. A broken sign-in is worse than the
 * missing directive: markup injection, the thing form-action mitigates, is already kept out by
 * the escaping `html` templates and, for script, by script-src.
 */
const SELF_POSTING_PAGES = /^\/(?:account(?:\/.*)?)?$/;

/** The Content-Security-Policy for a response; see securityHeaders. */
export function contentSecurityPolicy(nonce: string, path: string): string {
  return [
    "default-src 'none'",
    // None of our pages has a script; the directive is here, with a nonce nobody can guess, so that
    // oidc-provider can add the sha256 of the inline script of its own auto-submitting pages
    // (helpers/script_src_sha.js adds to an existing script-src and never creates one).
    `script-src 'nonce-${nonce}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    ...(SELF_POSTING_PAGES.test(path) ? ["form-action 'self'"] : []),
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join('; ');
}

/**
 * Security headers for every response, set before anything else runs: oidc-provider writes to
 * the Node response itself (the app mounts it with ctx.respond = false), so whatever it renders
 * (authorization errors, the logout confirmation, form_post pages) only carries headers already on
 * ctx.res. The provider's pages share the policy: it adds hashes for its own inline scripts.
 *
 * The same headers go on JSON and other responses, where browsers ignore CSP and framing headers;
 * none of them bears on CORS, so cross-origin fetches of discovery, JWKS, token and userinfo
 * behave as before.
 */
/**
 * The same protections for a JSON answer that holds no markup (discovery, the JWKS): the headers
 * are fixed, so they are built once. Nothing in the answer can run or load anything, so its policy
 * allows nothing at all.
 */
export function jsonSecurityHeaders(options: SecurityHeaderOptions): Readonly<Record<string, string>> {
  return Object.freeze({
    'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    ...(options.production ? { 'Strict-Transport-Security': HSTS } : {}),
  });
}

export function securityHeaders(options: SecurityHeaderOptions): Middleware {
  return async (ctx, next) => {
    const nonce = newCspNonce();
    ctx.state[CSP_NONCE_STATE] = nonce;
    ctx.set('Content-Security-Policy', contentSecurityPolicy(nonce, ctx.path));
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    // For browsers without frame-ancestors; where both are present, frame-ancestors wins.
    ctx.set('X-Frame-Options', 'DENY');
    if (options.production) ctx.set('Strict-Transport-Security', HSTS);
    await next();
  };
}
