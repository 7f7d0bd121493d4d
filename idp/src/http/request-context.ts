import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import { errors } from 'oidc-provider';
import { createRequestLog, type Logger } from '../logger.ts';
import { errorPage } from '../pages/views.ts';
import { describeProviderError } from '../pages/error-messages.ts';
import { HttpError } from './errors.ts';
import { requestScope } from './request-scope.ts';

const INCOMING_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Gives every request an id (kept from X-Request-Id when well-formed), logs one line when the
 * response is sent (path only: query strings can carry codes and tokens), and turns errors thrown
 * by our own routes into an error page.
 */
export function requestContext(log: Logger): Middleware {
  const logRequest = createRequestLog(log);
  return async (ctx, next) => {
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

    try {
      await next();
    } catch (error) {
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
