import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';

/** A provider answer that is the same for every request to one provider instance. */
export interface StaticAnswer {
  contentType: string;
  body: string;
}

/** The routes whose answers depend only on the provider instance: its configuration and its keys. */
const STATIC_ROUTES = new Set(['discovery', 'jwks']);

const answers = new WeakMap<Provider, Map<string, StaticAnswer>>();

/**
 * Discovery and the JWKS are built by the provider on every request, though they change only with
 * the provider instance (a key change builds a new one). This middleware, the provider's outermost,
 * keeps the first successful answer of each: what the provider built, after every other middleware
 * of ours (the issuer rewrite of discovery) has run on it.
 */
export function keepStaticAnswers(provider: Provider): Middleware {
  const kept = new Map<string, StaticAnswer>();
  answers.set(provider, kept);
  return async (ctx, next) => {
    await next();
    const { oidc } = ctx as Partial<KoaContextWithOIDC>;
    const route = oidc?.route;
    if (route === undefined || !STATIC_ROUTES.has(route) || kept.has(route)) return;
    if (ctx.method !== 'GET' || ctx.status !== 200 || typeof ctx.body !== 'object' || ctx.body === null) return;
    kept.set(route, { contentType: String(ctx.response.get('Content-Type') || 'application/json; charset=utf-8'), body: JSON.stringify(ctx.body) });
  };
}

/** The kept answer of a route of this provider instance, once the provider has answered it once. */
export function staticAnswerOf(provider: Provider, route: string): StaticAnswer | undefined {
  return answers.get(provider)?.get(route);
}
