import Router from '@koa/router';
import { callerOf, requireBearer, type AccessTokenVerifier } from '../http/bearer-token.ts';
import { ProblemError } from '../http/errors.ts';
import { firstIssue, malformed, readJson } from '../http/json-body.ts';
import { problemDetails } from '../http/problem-details.ts';
import type { Logger } from '../logger.ts';
import { recordUsageSchema, readUsageSchema } from './schemas.ts';
import { IdempotencyKeyReused, PlanRejected, UnknownUser, type PlanService } from './service.ts';

export const USAGE_PATH = '/api/usage';
export const USAGE_SCOPES = { write: 'usage:write', read: 'usage:read' } as const;

export interface UsageRouteDependencies {
  plans: Pick<PlanService, 'record' | 'meterOf'>;
  verifyAccessToken: AccessTokenVerifier;
  log: Logger;
  /** The realm of WWW-Authenticate challenges: the issuer. */
  realm: string;
}

/**
 * DEFAULT_PLAN names a plan that does not exist (the server logged it at start): a deployment fault
 * the operator fixes with `idp import` or DEFAULT_PLAN, answered 503 rather than 500; anything else as it is.
 */
function planNotConfigured(error: unknown): unknown {
  if (!(error instanceof PlanRejected)) return error;
  return new ProblemError(503, 'urn:jobswipe:problem:plan-not-configured', 'Service Unavailable', "the user's plan is not configured on this provider; try again later", { headers: { 'Retry-After': '60' } });
}

const unknownSubject = () => new ProblemError(404, 'urn:jobswipe:problem:unknown-subject', 'Unknown subject', 'no user has this sub');

/**
 * The usage API for JobSwipe's services (docs/usage.md): POST records usage if it fits the user's
 * plan, once per (client, idempotency_key); GET reads a meter. Each route reads top to bottom: the
 * problem-details wrapper, the bearer check with its scopes, validation, the library call.
 */
export function usageRoutes(deps: UsageRouteDependencies): Router {
  const router = new Router();
  const answerProblems = problemDetails(deps.log);

  router.post(USAGE_PATH, answerProblems, requireBearer(deps.verifyAccessToken, [USAGE_SCOPES.write], deps.realm), async (ctx) => {
    const parsed = recordUsageSchema.safeParse(await readJson(ctx));
    if (!parsed.success) throw malformed(firstIssue(parsed.error));
    const body = parsed.data;
    let result;
    try {
      result = await deps.plans.record({
        clientId: callerOf(ctx).clientId,
        userId: body.sub,
        meter: body.meter,
        quantity: body.quantity,
        idempotencyKey: body.idempotency_key,
      });
    } catch (error) {
      if (error instanceof UnknownUser) throw unknownSubject();
      if (error instanceof IdempotencyKeyReused) throw new ProblemError(422, 'urn:jobswipe:problem:idempotency-key-reused', 'Idempotency key reused', error.message);
      throw planNotConfigured(error);
    }
    if (result.outcome === 'over_limit') {
      throw new ProblemError(429, 'urn:jobswipe:problem:limit-exceeded', 'Usage limit exceeded', `recording ${body.quantity} would pass the plan's limit of ${result.usage.limit} ${body.meter} this period`, {
        headers: { 'Retry-After': String(result.retryAfterSeconds) },
        extensions: result.usage,
      });
    }
    ctx.status = result.outcome === 'recorded' ? 201 : 200;
    ctx.body = result.usage;
  });

  router.get(USAGE_PATH, answerProblems, requireBearer(deps.verifyAccessToken, [USAGE_SCOPES.read, USAGE_SCOPES.write], deps.realm), async (ctx) => {
    const parsed = readUsageSchema.safeParse(ctx.query);
    if (!parsed.success) throw malformed(firstIssue(parsed.error));
    try {
      ctx.body = await deps.plans.meterOf(parsed.data.sub, parsed.data.meter);
    } catch (error) {
      if (error instanceof UnknownUser) throw unknownSubject();
      throw planNotConfigured(error);
    }
  });

  // Any other method on the path: 405 with Allow, as a problem too.
  router.all(USAGE_PATH, answerProblems, () => {
    throw new ProblemError(405, 'about:blank', 'Method Not Allowed', 'this path answers GET and POST', { headers: { Allow: 'GET, HEAD, POST' } });
  });
  return router;
}
