import type { Middleware } from 'koa';
import type { KoaContextWithOIDC } from 'oidc-provider';

/** Rewrites a URL the provider built on the request's origin onto the issuer's; anything else is left alone. */
function underIssuer(value: unknown, requestOrigin: string, issuerOrigin: string): unknown {
  if (typeof value === 'string') return value.startsWith(`${requestOrigin}/`) ? issuerOrigin + value.slice(requestOrigin.length) : value;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, nested]) => [key, underIssuer(nested, requestOrigin, issuerOrigin)]));
  }
  return value;
}

/**
 * The provider builds discovery's endpoint URLs from the request's Host (or a trusted X-Forwarded-Host),
 * so a request naming another host would be told to send tokens there: they are put under the issuer.
 */
export function discoveryUnderIssuer(issuer: string): Middleware {
  const issuerOrigin = new URL(issuer).origin;
  return async (ctx, next) => {
    await next();
    const { oidc } = ctx as Partial<KoaContextWithOIDC>;
    if (oidc?.route !== 'discovery' || typeof ctx.body !== 'object' || ctx.body === null || !URL.canParse(ctx.href)) return;
    // The base the provider's urlFor resolved the URLs against.
    const requestOrigin = new URL(ctx.href).origin;
    if (requestOrigin !== issuerOrigin) ctx.body = underIssuer(ctx.body, requestOrigin, issuerOrigin);
  };
}
