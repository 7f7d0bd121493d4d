import { randomUUID } from 'node:crypto';
import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import { isStoreUnavailable } from '@jobswipe/adapters';
import { createRequestLog, type Logger } from '../logger.ts';
import { errorPage } from '../pages/views.ts';
import { describeProviderError } from '../pages/error-messages.ts';
import { HttpError } from './errors.ts';
import { requestScope } from './request-scope.ts';
import { providerRouteOf } from './route-resolution.ts';

const INCOMING_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * The request's id (kept from X-Request-Id when well-formed) on the request and its response, and
 * its log line once the response is sent: for every answer, the static ones included (app.ts).
 */
export function requestTracking(log: Logger): (ctx: Context) => string {
  const logRequest = createRequestLog(log);
  return (ctx) => {
    const incoming = ctx.get('x-request-id');
    const requestId = INCOMING_ID.test(incoming) ? incoming : randomUUID();
    requestScope(ctx.req).requestId = requestId;
    ctx.state['requestId'] = requestId;
    ctx.set('X-Request-Id', requestId);
    const started = performance.now();
    ctx.res.once('finish', () => {
      logRequest({
        requestId,
        method: ctx.method,
        path: ctx.path,
        status: ctx.res.statusCode,
        ms: Math.round(performance.now() - started),
      });
    });
    return requestId;
  };
}

/**
 * Gives every request an id (kept from X-Request-Id when well-formed), logs one line when the
 * response is sent (path only: query strings can carry codes and tokens), and turns errors thrown
 * by our own routes into an error page. A store that cannot answer (Postgres or Redis away) is a
 * 503 with Retry-After: OAuth `temporarily_unavailable` JSON on the provider's endpoints (our checks in
 * front of them read the store too), a page elsewhere; never a 500.
 */
export function requestContext(log: Logger): Middleware {
  const track = requestTracking(log);
  return async (ctx, next) => {
    const requestId = track(ctx);

    try {
      await next();
    } catch (error) {
      if (isStoreUnavailable(error) && !(error instanceof HttpError)) {
        log.warn({ requestId, err: error }, 'store unavailable');
        if (storeUnavailable(ctx, requestId, error instanceof errors.OIDCProviderError)) return;
      }
      let status = 500;
      let title = 'Something went wrong';
      let message = 'We could not complete this request. Try again; if it keeps happening, contact support with the reference below.';
      if (error instanceof HttpError) {
        ({ status, title, message } = error);
        ctx.set(error.headers);
      } else if (error instanceof errors.OIDCProviderError) {
        status = error.statusCode;
        ({ title, message } = describeProviderError(error.name === 'SessionNotFound' ? 'session_not_found' : error.error));
      } else {
        log.error({ requestId, err: error }, 'unhandled error');
      }
      ctx.status = status;
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = errorPage({ title, message, requestId });
    }
  };
}

const UNAVAILABLE = {
  title: 'Briefly unavailable',
  message: 'JobSwipe could not reach one of its services. Nothing was lost: wait a minute, then try again.',
};

/**
 * Answers 503 for a store that cannot answer: OAuth JSON on the provider's endpoints and to clients that
 * do not ask for HTML, our page otherwise. Returns false to leave a provider error's page to the
 * provider's own wording (below).
 */
function storeUnavailable(ctx: Context, requestId: string, fromProvider: boolean): boolean {
  ctx.status = 503;
  ctx.set('Retry-After', '5');
  ctx.set('Cache-Control', 'no-store');
  if (providerRouteOf(ctx) !== null || ctx.accepts('html', 'json') !== 'html') {
    ctx.body = { error: 'temporarily_unavailable', error_description: 'a store the provider needs is unavailable; try again shortly' };
    return true;
  }
  if (fromProvider) return false;
  ctx.type = 'html';
  ctx.body = errorPage({ ...UNAVAILABLE, requestId });
  return true;
}
