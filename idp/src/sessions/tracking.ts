import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { ClientIp } from '../http/client-ip.ts';
import { requestScope } from '../http/request-scope.ts';
import type { Logger } from '../logger.ts';
import type { SessionRegistry } from './registry.ts';

/**
 * Keeps the session registry in step with the provider: every successful authorization records the
 * session's user, agent, address and last use (before the response is sent, so /account shows it at
 * once); a session the provider destroys (RP-initiated logout) is marked ended.
 */
export function trackSessions(provider: Provider, registry: SessionRegistry, sessionSeconds: number, log: Logger, clientIp: ClientIp): void {
  provider.on('authorization.success', (ctx: KoaContextWithOIDC) => {
    const session = ctx.oidc.session;
    if (!session?.accountId) return;
    const nowSeconds = Math.floor(Date.now() / 1000);
    requestScope(ctx.req).sessionRecorded = registry
      .record({
        uid: session.uid,
        userId: session.accountId,
        startedAt: new Date((session.loginTs ?? nowSeconds) * 1000),
        // Every use saves the session again for its whole lifetime.
        expiresAt: new Date((nowSeconds + sessionSeconds) * 1000),
        userAgent: ctx.get('user-agent'),
        ip: clientIp(ctx.req),
      })
      .catch((error: unknown) => log.error({ err: error }, 'session registry update failed'));
  });

  provider.use(async (ctx, next) => {
    await next();
    await requestScope(ctx.req).sessionRecorded;
  });

  (provider as unknown as NodeJS.EventEmitter).on('session.destroyed', (session: { uid?: string }) => {
    if (!session.uid) return;
    registry.end(session.uid, 'signed out').catch((error: unknown) => log.error({ err: error }, 'session registry update failed'));
  });
}
