import type { Middleware } from 'koa';
import { isStoreUnavailable } from '@jobswipe/adapters';
import type { Logger } from '../logger.ts';
import { HttpError, PROBLEM_CONTENT_TYPE, ProblemError, problemDocument } from './errors.ts';

/**
 * Our JSON APIs' errors as RFC 9457 problem details (application/problem+json), never an HTML page
 * and never a stack: a ProblemError as it is, another HttpError by its status, a store that cannot
 * answer as 503 with Retry-After, anything else as a 500 that names the request id in the log.
 */
export function problemDetails(log: Logger): Middleware {
  return async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    try {
      await next();
    } catch (error) {
      let problem: ProblemError;
      if (error instanceof ProblemError) {
        problem = error;
      } else if (error instanceof HttpError) {
        problem = new ProblemError(error.status, 'about:blank', error.title, error.message, { headers: error.headers });
      } else if (isStoreUnavailable(error)) {
        log.warn({ requestId: ctx.state['requestId'], err: error }, 'store unavailable');
        problem = new ProblemError(503, 'about:blank', 'Service Unavailable', 'a store the provider needs is unavailable; try again shortly', { headers: { 'Retry-After': '5' } });
      } else {
        log.error({ requestId: ctx.state['requestId'], err: error }, 'unhandled error');
        problem = new ProblemError(500, 'about:blank', 'Internal Server Error', `the request could not be completed (request id ${String(ctx.state['requestId'])})`);
      }
      ctx.status = problem.status;
      ctx.set(problem.headers);
      ctx.set('Cache-Control', 'no-store');
      ctx.type = PROBLEM_CONTENT_TYPE;
      ctx.body = JSON.stringify(problemDocument(problem));
    }
  };
}
