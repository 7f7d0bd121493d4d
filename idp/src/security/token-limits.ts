import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Context, Middleware } from 'koa';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { CLIENT_AUTH_ENDPOINTS, claimedClient, refusedUnreadBody } from '../http/client-auth-method.ts';
import type { ClientIp } from '../http/client-ip.ts';
import type { AuditLog } from '../audit/log.ts';
import type { Logger } from '../logger.ts';
import { countFailure, failClosed, limiter, LOGIN_LIMITS, type LoginLimitStore } from './login-limits.ts';

/**
 * Failed client authentications allowed per window, counted like failed sign-ins: per client IP,
 * and per client id across all IPs.
 */
export const CLIENT_AUTH_FAILURE_LIMITS = {
  ip: LOGIN_LIMITS.ip,
  client: LOGIN_LIMITS.account,
} as const;

/**
 * RFC 6749 has no error code for "too many requests". temporarily_unavailable (RFC 6749 §4.1.2.1)
 * says "try again later" and nothing about the credentials, which is what the client should do;
 * invalid_client would make a client with good credentials believe they are wrong.
 */
const LIMITED_ERROR = 'temporarily_unavailable';

export class TokenLimited extends Error {
  readonly limit: 'ip' | 'client' | 'requests';
  readonly retryAfterSeconds: number;

  constructor(limit: 'ip' | 'client' | 'requests', msBeforeNext: number) {
    const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    super(
      limit === 'requests'
        ? `this client made too many requests; try again in ${seconds} seconds`
        : `too many failed client authentications ${limit === 'ip' ? 'from this address' : 'for this client'}; try again in ${seconds} seconds`,
    );
    this.limit = limit;
    this.retryAfterSeconds = seconds;
  }
}

class LimitsUnavailable extends Error {}

/**
 * Unlike the sign-in limits, a Redis outage falls back to counters in the database: grants and
 * refresh tokens live in Postgres, so clients keep getting tokens while Redis is down (docs/scaling.md).
 */
const counter = (store: LoginLimitStore, name: string, limits: { points: number; duration: number }) =>
  limiter(store, name, limits, { databaseWhileRedisIsDown: true });

/** Client ids are chosen by whoever sends the request: hashed, so a key in the store has a fixed size. */
const clientKey = (clientId: string) => createHash('sha256').update(clientId).digest('hex');

const guarded = <T>(operation: () => Promise<T>) =>
  failClosed(operation, (error) => error instanceof TokenLimited, (cause) => new LimitsUnavailable('the rate limit store is unavailable', { cause }));

/**
 * Limits on the endpoints where clients authenticate (token, introspection, revocation, pushed
 * authorization requests, device authorization): a request budget per client, and failed authentications counted per IP
 * and per client. Store outages refuse requests: the limits fail closed.
 */
export function createTokenLimits(store: LoginLimitStore, options: { requestsPerMinute: number }) {
  const failuresByIp = counter(store, 'client-auth-ip', CLIENT_AUTH_FAILURE_LIMITS.ip);
  const failuresByClient = counter(store, 'client-auth-client', CLIENT_AUTH_FAILURE_LIMITS.client);
  const requestsByClient = counter(store, 'token-requests', { points: options.requestsPerMinute, duration: 60 });

  return {
    /**
     * Refuses (TokenLimited) a request whose IP or claimed client is blocked for failures, or whose
     * client has used up its requests this minute; otherwise counts it against the client's budget.
     * Resolves to whether the IP has failures on record.
     */
    async admit(ip: string, clientId: string | undefined): Promise<{ ipHasFailures: boolean }> {
      return guarded(async () => {
        const [ipState, clientState] = await Promise.all([
          failuresByIp.get(ip),
          clientId === undefined ? null : failuresByClient.get(clientKey(clientId)),
        ]);
        if (ipState && ipState.consumedPoints >= CLIENT_AUTH_FAILURE_LIMITS.ip.points) throw new TokenLimited('ip', ipState.msBeforeNext);
        if (clientState && clientState.consumedPoints >= CLIENT_AUTH_FAILURE_LIMITS.client.points) {
          throw new TokenLimited('client', clientState.msBeforeNext);
        }
        if (clientId !== undefined) {
          try {
            await requestsByClient.consume(clientKey(clientId));
          } catch (error) {
            if (error instanceof RateLimiterRes) throw new TokenLimited('requests', error.msBeforeNext);
            throw error;
          }
        }
        return { ipHasFailures: (ipState?.consumedPoints ?? 0) > 0 };
      });
    },
    async failed(ip: string, clientId: string | undefined): Promise<void> {
      await guarded(() => Promise.all([countFailure(failuresByIp, ip), clientId === undefined ? undefined : countFailure(failuresByClient, clientKey(clientId))]));
    },
    /** A client authenticated from this IP: its failures there are forgiven, as a sign-in's are. */
    async succeeded(ip: string): Promise<void> {
      await guarded(() => failuresByIp.delete(ip));
    },
  };
}

export type TokenLimits = ReturnType<typeof createTokenLimits>;

/** An OAuth error response (RFC 6749 §5.2) from either Koa app, ours or the provider's. */
function answer(ctx: Context, status: number, description: string, headers: Record<string, string> = {}): void {
  ctx.status = status;
  ctx.set({ 'Cache-Control': 'no-store', ...headers });
  ctx.body = { error: LIMITED_ERROR, error_description: description };
}

const UNAVAILABLE = 'client authentication cannot be checked right now; try again in a minute';

/** How each admitted request's outcome is to be counted, keyed by its response (shared by both Koa apps). */
const outcomes = new WeakMap<ServerResponse, (ctx: Context) => Promise<void>>();

async function settle(ctx: Context): Promise<void> {
  const record = outcomes.get(ctx.res);
  if (!record) return;
  outcomes.delete(ctx.res);
  await record(ctx);
}

/**
 * In front of the provider: refuses a blocked request with 429 before its credentials are looked at,
 * and counts the outcome of the others. A 401 on these endpoints is a failed client authentication
 * (the provider's invalid_client, or our method check); a 2xx means the client authenticated.
 */
export function tokenEndpointLimits(limits: TokenLimits, clientIp: ClientIp, log: Logger, audit: AuditLog): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_ENDPOINTS.has(ctx.path)) return next();
    const claim = await claimedClient(ctx);
    if (refusedUnreadBody(ctx, claim)) return;
    const ip = clientIp(ctx.req);
    const about = { clientId: claim.clientId, ip, userAgent: ctx.get('user-agent') || undefined };
    let admitted: { ipHasFailures: boolean };
    try {
      admitted = await limits.admit(ip, claim.clientId);
    } catch (error) {
      if (error instanceof TokenLimited) {
        log.warn({ event: 'client_auth.rate_limited', requestId: ctx.state['requestId'], limit: error.limit, retryAfter: error.retryAfterSeconds });
        await audit.record({ type: 'client_auth.rate_limited', outcome: 'failure', ...about, details: { endpoint: ctx.path, limit: error.limit } });
        answer(ctx, 429, error.message, { 'Retry-After': String(error.retryAfterSeconds) });
        return;
      }
      log.error({ err: error, requestId: ctx.state['requestId'] }, 'rate limit store unavailable');
      answer(ctx, 503, UNAVAILABLE, { 'Retry-After': '60' });
      return;
    }
    outcomes.set(ctx.res, async (settled) => {
      if (settled.status === 401) {
        await audit.record({ type: 'client_auth.failure', outcome: 'failure', ...about, details: { endpoint: ctx.path } });
        try {
          await limits.failed(ip, claim.clientId);
        } catch (error) {
          log.error({ err: error, requestId: ctx.state['requestId'] }, 'rate limit store unavailable');
          answer(settled, 503, UNAVAILABLE, { 'Retry-After': '60' });
        }
      } else if (settled.status < 300 && admitted.ipHasFailures) {
        // Tokens may already have been issued: a store failure here must not replace the response.
        await limits.succeeded(ip).catch((error: unknown) => log.warn({ err: error }, 'could not clear client authentication failures'));
      }
    });
    await next();
    // Our own answers (the method check) are counted here; the provider's by providerOutcomes(), before it responds.
    await settle(ctx);
  };
}

/** Installed in the provider (provider.use): counts its answer while the response can still be changed. */
export function providerOutcomes(): Middleware {
  return async (ctx, next) => {
    await next();
    await settle(ctx);
  };
}
