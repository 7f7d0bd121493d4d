import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { requestScope, type ResolvedProviderRoute } from './request-scope.ts';

/** The provider routes our own middlewares guard, by the provider's route name, with their methods. */
const GUARDED_ROUTES: Record<string, readonly string[]> = {
  token: ['POST'],
  introspection: ['POST'],
  revocation: ['POST'],
  pushed_authorization_request: ['POST'],
  device_authorization: ['POST'],
  // The router answers HEAD with a route registered for GET.
  code_verification: ['GET', 'HEAD', 'POST'],
  jwks: ['GET', 'HEAD'],
};

/** Endpoints that authenticate clients, all with the client's one registered token_endpoint_auth_method. */
export const CLIENT_AUTH_ROUTES: ReadonlySet<string> = new Set(['token', 'introspection', 'revocation', 'pushed_authorization_request', 'device_authorization']);

/**
 * oidc-provider's router (lib/helpers/router.js) compares paths case-folded and, when nothing
 * matches, once more without one trailing slash. Its folding leaves a non-ASCII character unequal to
 * any ASCII one, and our guarded paths are ASCII: so a path matches when it is ASCII and equal but for
 * ASCII case. Percent-encoded characters are compared as they are, by it and here.
 */
function sameRoutePath(requested: string, routePath: string): boolean {
  return requested.length === routePath.length && /^[\x21-\x7e]*$/.test(requested) && requested.toUpperCase() === routePath.toUpperCase();
}

const routePaths = new WeakMap<Provider, Map<string, string | undefined>>();

/** The path the router matches for a route name (ctx.path, below any mount path); none when its feature is off. */
export function routePathOf(provider: Provider, name: string): string | undefined {
  let paths = routePaths.get(provider);
  if (!paths) routePaths.set(provider, (paths = new Map()));
  if (paths.has(name)) return paths.get(name);
  let path: string | undefined;
  try {
    path = provider.pathFor(name, { mountPath: '' });
  } catch {
    path = undefined;
  }
  paths.set(name, path);
  return path;
}

/** The guarded route `method path` reaches in the provider, or null: decided as its router decides. */
export function resolveGuardedRoute(provider: Provider, method: string, path: string): ResolvedProviderRoute | null {
  const candidates = path.length > 1 && path.endsWith('/') ? [path, path.slice(0, -1)] : [path];
  for (const requested of candidates) {
    for (const [name, methods] of Object.entries(GUARDED_ROUTES)) {
      if (!methods.includes(method)) continue;
      const routePath = routePathOf(provider, name);
      if (routePath !== undefined && sameRoutePath(requested, routePath)) return { name, path: routePath };
    }
  }
  return null;
}

/** Resolves the request's provider route once, first thing, for every later check (requestScope().providerRoute). */
export function resolveProviderRoute(provider: () => Provider): Middleware {
  return async (ctx, next) => {
    requestScope(ctx.req).providerRoute = resolveGuardedRoute(provider(), ctx.method, ctx.path);
    return next();
  };
}

/** The guarded provider route this request reaches, as resolved by resolveProviderRoute. */
export function providerRouteOf(ctx: Pick<Context, 'req'>): ResolvedProviderRoute | null {
  return requestScope(ctx.req).providerRoute ?? null;
}
