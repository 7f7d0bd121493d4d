import type { ServerResponse } from 'node:http';
import type { Middleware } from 'koa';

/**
 * The provider's endpoints that answer CORS: discovery, JWKS, token, userinfo, introspection,
 * revocation and pushed authorization requests. oidc-provider writes the headers itself.
 */
const CORS_ENDPOINTS = new Set([
  '/.well-known/openid-configuration',
  '/.well-known/oauth-authorization-server',
  '/jwks',
  '/token',
  '/me',
  '/token/introspection',
  '/token/revocation',
  '/request',
]);

/** Drops every Access-Control-* header written to this response from now on, by either Koa app. */
function withholdCorsHeaders(res: ServerResponse): void {
  const setHeader = res.setHeader.bind(res);
  res.setHeader = ((name: string, value: number | string | readonly string[]) =>
    name.toLowerCase().startsWith('access-control-') ? res : setHeader(name, value)) as ServerResponse['setHeader'];
}

/**
 * oidc-provider echoes any Origin on discovery and JWKS, and on every preflight (it cannot tell the
 * client before the actual request); only actual requests to client endpoints are checked against the
 * client (clientBasedCORS). Here every response, preflight or actual, of every endpoint loses its CORS
 * headers unless it is one of the endpoints above and its Origin is the origin of a registered
 * redirect URI. The provider's per-client check still applies after this one.
 */
export function corsAllowList(isRegisteredOrigin: (origin: string) => Promise<boolean>): Middleware {
  return async (ctx, next) => {
    const origin = ctx.get('origin');
    const allowed = origin !== '' && CORS_ENDPOINTS.has(ctx.path) && (await isRegisteredOrigin(origin).catch(() => false));
    if (!allowed) withholdCorsHeaders(ctx.res);
    return next();
  };
}
