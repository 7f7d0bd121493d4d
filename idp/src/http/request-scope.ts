import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';

/** A provider route our controls guard, as oidc-provider's router resolves the request (provider/route-resolution.ts). */
export interface ResolvedProviderRoute {
  /** The provider's route name (`token`, `code_verification`, ...), as in `ctx.oidc.route`. */
  name: string;
  /** Its canonical path, whatever the spelling of the request: what the audit records. */
  path: string;
}

/** Who a request to a client-authenticating endpoint claims to be, before anything is verified. */
export interface ClaimedClient {
  clientId: string | undefined;
  /** The secret method the request used, when it sent a secret. */
  secretMethod: 'client_secret_basic' | 'client_secret_post' | undefined;
  /** The secret it sent that way, if any: held for the request only, never logged or stored. */
  secret?: string | undefined;
}

/**
 * What one request carries between our middlewares and the provider's handlers. The provider only
 * sees the raw Node request, so the scope hangs on it; every field is set by one module, named here.
 */
export interface RequestScope {
  /** http/request-context.ts: the request's id, for logs and error pages. */
  requestId?: string;
  /** metrics/http-requests.ts (labelRoute): the route pattern of a request no router of ours matched (provider routes, static answers). */
  routeLabel?: string;
  /** provider/route-resolution.ts: the guarded provider route the path resolves to; null for none. */
  providerRoute?: ResolvedProviderRoute | null;
  /** http/client-auth-method.ts: the claimed client, read once, or why the body could not be read. */
  claimedClient?: Promise<ClaimedClient | 'too large' | 'aborted'>;
  /** http/client-auth-method.ts: the claimed client as the provider found it, for our checks before the provider's. */
  claimedClientRecord?: { provider: object; clientId: string; found: Promise<unknown> };
  /** http/client-auth-method.ts: the body the provider reads in place of the one we consumed. */
  bodyForProvider?: Buffer;
  /** security/token-limits.ts: counts the outcome of an admitted client authentication, once. */
  settleClientAuth?: (ctx: Context) => Promise<void>;
  /** interactions/device.ts: the user code of verification_uri_complete, shown in the form. */
  prefilledUserCode?: string;
  /** audit/provider-events.ts: audit writes the provider's response waits for. */
  auditWrites?: Array<Promise<void>>;
  /** sessions/tracking.ts: the session registry update the provider's response waits for. */
  sessionRecorded?: Promise<void>;
  /** provider/refresh-replay.ts: the earlier rotation this refresh request was answered with again. */
  refreshReplayed?: ReplayedRefresh;
  /**
   * Writes the provider's response waits for (server.ts): grant revocations after a lost redemption
   * race (server.ts), a rotation's kept answer (provider/refresh-replay.ts). Each settles without throwing.
   */
  pendingWrites?: Array<Promise<void>>;
}

/** What the audit records about a refresh answered with the tokens of an earlier rotation. */
export interface ReplayedRefresh {
  grantId: string;
  userId: string | undefined;
  sessionId: string | undefined;
  scope: string | undefined;
}

const SCOPE = Symbol('jobswipe.requestScope');

type ScopedRequest = IncomingMessage & { [SCOPE]?: RequestScope };

/** The scope of this request, created on first use: one per request, whoever asks first. */
export function requestScope(req: IncomingMessage): RequestScope {
  const scoped = req as ScopedRequest;
  scoped[SCOPE] ??= {};
  return scoped[SCOPE];
}

/** Gives a stand-in for `req` (the replay the provider reads) the same scope. */
export function shareRequestScope(req: IncomingMessage, standIn: IncomingMessage): void {
  Object.defineProperty(standIn, SCOPE, { value: requestScope(req), enumerable: false });
}

/** The id of a request, for code that only sees the raw Node request (the provider's own handlers). */
export function requestIdOf(req: IncomingMessage): string | undefined {
  return requestScope(req).requestId;
}
