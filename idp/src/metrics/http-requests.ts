import type { IncomingMessage } from 'node:http';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { providerRouteOf, routePathOf } from '../http/route-resolution.ts';
import { requestScope } from '../http/request-scope.ts';
import type { Metrics } from './registry.ts';

/** The route label of a request nothing matched (a 404, a probe for /wp-admin): one label for all of them. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Methods reported by name; any other (the parser accepts a few dozen) is `other`. */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/** Names the route pattern of a request answered outside our routers (the provider, static answers). */
export function labelRoute(req: IncomingMessage, pattern: string): void {
  requestScope(req).routeLabel = pattern;
}

/** oidc-provider's routes with a parameter (pathFor names them only with a value), at its default paths. */
const PARAMETER_ROUTES: Record<string, string> = { resume: '/auth/:uid', device_resume: '/device/:uid', client: '/reg/:clientId' };

/** The provider answers discovery at two paths; both count under the OpenID one. */
const DISCOVERY_ROUTE = '/.well-known/openid-configuration';

/** The pattern of a provider route, by its name (`ctx.oidc.route`). */
export function providerRoutePattern(provider: Provider, name: string): string {
  if (name === 'discovery') return DISCOVERY_ROUTE;
  return routePathOf(provider, name) ?? PARAMETER_ROUTES[name] ?? name;
}

/** A provider middleware: labels each request with the route the provider's router took. */
export function labelProviderRoutes(provider: Provider): Parameters<Provider['use']>[0] {
  return async (ctx, next) => {
    try {
      await next();
    } finally {
      // An error answer too: the provider's error handler, outside this middleware, renders it.
      const route = (ctx as { oidc?: { route?: string } }).oidc?.route;
      if (route !== undefined) labelRoute(ctx.req, providerRoutePattern(provider, route));
    }
  };
}

/**
 * The route pattern a request reached, never its raw path, so the label set stays bounded: a
 * provider route or static answer as labelled, then our routers' matched pattern, then the guarded
 * provider route resolved up front (a request refused before the provider saw it).
 */
export function routeLabelOf(ctx: Context): string {
  const scope = requestScope(ctx.req);
  if (scope.routeLabel !== undefined) return scope.routeLabel;
  const matched = (ctx as Context & { _matchedRoute?: string | RegExp })._matchedRoute;
  if (matched !== undefined) return String(matched);
  return providerRouteOf(ctx)?.path ?? UNMATCHED_ROUTE;
}

/** The status the client got: the provider writes its responses itself (ctx.respond false). */
const statusOf = (ctx: Context) => (ctx.respond === false ? ctx.res.statusCode : ctx.status);

/**
 * Counts and times every request, first in the stack. The cost per request is a clock read and two
 * counter updates: nothing is awaited but the request itself.
 */
export function countRequests(metrics: Metrics): Middleware {
  const { httpRequests, httpDuration } = metrics;
  return async (ctx, next) => {
    const started = performance.now();
    let status = 500;
    try {
      await next();
      status = statusOf(ctx);
    } catch (error) {
      const given = (error as { status?: unknown }).status;
      status = typeof given === 'number' && given >= 400 && given < 600 ? given : 500;
      throw error;
    } finally {
      const route = routeLabelOf(ctx);
      httpRequests.inc({ route, method: METHODS.has(ctx.method) ? ctx.method : 'other', status: String(status) });
      httpDuration.observe({ route }, (performance.now() - started) / 1000);
    }
  };
}
