import type { Context, Middleware } from 'koa';
import { claimedClient, provesClientSecret, refusedUnreadBody } from '../http/client-auth-method.ts';
import { requestScope } from '../http/request-scope.ts';
import { CLIENT_AUTH_ROUTES, providerRouteOf } from '../http/route-resolution.ts';
import type { ClientIp } from '../http/client-ip.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import type { Logger } from '../logger.ts';
import type Provider from 'oidc-provider';
import { LIMITS, RateLimited, type Admitted, type ClientAuthLimits } from './limits.ts';

/**
 * RFC 6749 has no error code for "too many requests". temporarily_unavailable (RFC 6749 §4.1.2.1)
 * says "try again later" and nothing about the credentials, which is what the client should do;
 * invalid_client would make a client with good credentials believe they are wrong.
 */
const LIMITED_ERROR = 'temporarily_unavailable';

/** An OAuth error response (RFC 6749 §5.2) from either Koa app, ours or the provider's. */
function answer(ctx: Context, status: number, description: string, headers: Record<string, string> = {}): void {
  ctx.status = status;
  ctx.set({ 'Cache-Control': 'no-store', ...headers });
  ctx.body = { error: LIMITED_ERROR, error_description: description };
}

/** Counts an admitted request's outcome once, from whichever Koa app (ours or the provider's) answers it. */
async function settle(ctx: Context): Promise<void> {
  const scope = requestScope(ctx.req);
  const record = scope.settleClientAuth;
  if (!record) return;
  delete scope.settleClientAuth;
  await record(ctx);
}

/**
 * In front of the provider: takes the request's points before its credentials are looked at (a
 * blocked request gets 429 and nothing is checked), then counts its outcome. A 401 on these endpoints
 * is a failed client authentication (the provider's invalid_client, or our method check), and its
 * points stay spent; a 2xx means the client authenticated.
 */
export function tokenEndpointLimits(limits: ClientAuthLimits, provider: () => Provider, clientIp: ClientIp, log: Logger, recordEvent: RecordEvent): Middleware {
  return async (ctx, next) => {
    const route = providerRouteOf(ctx);
    if (ctx.method !== 'POST' || !route || !CLIENT_AUTH_ROUTES.has(route.name)) return next();
    const claim = await claimedClient(ctx);
    if (refusedUnreadBody(ctx, claim)) return;
    const ip = clientIp(ctx.req);
    const about = { clientId: claim.clientId, ip, userAgent: ctx.get('user-agent') || undefined };
    let admitted: Admitted;
    try {
      // A right secret needs no failure points held meanwhile (nor a place in the address's queue).
      const proven = claim.clientId !== undefined && (await provesClientSecret(ctx, provider(), claim));
      admitted = proven ? await limits.admitProven(ip, claim.clientId!) : await limits.admit(ip, claim.clientId);
    } catch (error) {
      if (error instanceof RateLimited) {
        await recordEvent({ type: 'client_auth.rate_limited', outcome: 'failure', ...about, details: { endpoint: route.path, limit: error.reported } });
      } else {
        log.error({ err: error, requestId: ctx.state['requestId'] }, 'rate limit store unavailable');
      }
      refuse(ctx, error);
      return;
    }
    // The outcome is counted before the response goes out: a client that has its answer finds its
    // address's count already settled (a success cleared, an undecided request given back), so
    // its next request is never refused for points still held by this one.
    requestScope(ctx.req).settleClientAuth = async (settled) => {
      if (settled.status === 401) {
        await Promise.all([
          recordEvent({ type: 'client_auth.failure', outcome: 'failure', ...about, details: { endpoint: route.path } }),
          admitted.failed().catch((error: unknown) => log.warn({ err: error }, 'could not count a client authentication')),
        ]);
        return;
      }
      // Tokens may already have been issued: a store failure here must not replace the response.
      await (settled.status < 300 ? admitted.authenticated() : admitted.undecided()).catch((error: unknown) =>
        log.warn({ err: error }, 'could not count a client authentication'),
      );
    };
    try {
      await next();
      // Our own answers (the method check) are counted here; the provider's by providerOutcomes(), before it responds.
      await settle(ctx);
    } finally {
      admitted.leave();
    }
  };
}

/** A refusal in OAuth JSON: 429 for a limit, 503 (fail closed) when the store cannot answer. */
function refuse(ctx: Context, error: unknown): void {
  if (error instanceof RateLimited) {
    answer(ctx, 429, error.message, error.headers);
    return;
  }
  answer(ctx, 503, LIMITS['client-auth-ip'].unavailable.message, { 'Retry-After': '60' });
}

/** Installed in the provider (provider.use): counts its answer while the response can still be changed. */
export function providerOutcomes(): Middleware {
  return async (ctx, next) => {
    await next();
    await settle(ctx);
  };
}
