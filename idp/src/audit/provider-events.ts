import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { AlreadyConsumedError } from '@jobswipe/adapters';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { requestScope } from '../http/request-scope.ts';
import type { AuditEvent } from './events.ts';
import type { RecordEvent } from './record-event.ts';

type ProviderEvents = NodeJS.EventEmitter;

/**
 * Records the provider's token and logout events. Writes started during a request are awaited
 * before its response goes out, so an event is in the log by the time the client sees the result.
 */
export function auditProviderEvents(provider: Provider, recordEvent: RecordEvent, clientIp: ClientIp): void {
  const write = (ctx: KoaContextWithOIDC, event: AuditEvent) => {
    const scope = requestScope(ctx.req);
    (scope.auditWrites ??= []).push(recordEvent({ ...requestOrigin(ctx, clientIp), ...event }));
  };

  provider.use(async (ctx, next) => {
    await next();
    // oidc-provider emits no event for a successful revocation: it is a 200 from that route.
    if (ctx.oidc?.route === 'revocation' && ctx.status === 200) revoked(ctx as KoaContextWithOIDC);
    await Promise.all(requestScope(ctx.req).auditWrites ?? []);
  });

  function revoked(ctx: KoaContextWithOIDC) {
    const { entities, client } = ctx.oidc;
    const token = entities.RefreshToken ?? entities.AccessToken ?? entities.ClientCredentials;
    // Found, and revocable by this client (the default policy): anything else was answered 200 and left alone.
    if (!token || !client || token.clientId !== client.clientId) return;
    write(ctx, {
      type: 'token.revoked',
      outcome: 'success',
      userId: 'accountId' in token ? token.accountId : undefined,
      clientId: client.clientId,
      sessionId: 'sessionUid' in token ? token.sessionUid : undefined,
      details: { kind: token.kind, grant_id: ('grantId' in token ? token.grantId : undefined) ?? null },
    });
  }

  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const { entities, client } = ctx.oidc;
    const grantType = String(ctx.oidc.params?.['grant_type'] ?? '');
    const replayed = requestScope(ctx.req).refreshReplayed;
    if (replayed) {
      // Answered with the tokens of an earlier rotation (provider/refresh-replay.ts): nothing new was issued.
      write(ctx, {
        type: 'token.refresh_replayed',
        outcome: 'success',
        userId: replayed.userId,
        clientId: client?.clientId,
        sessionId: replayed.sessionId,
        details: { grant_type: grantType, scope: replayed.scope ?? null, grant_id: replayed.grantId },
      });
      return;
    }
    const token = entities.AccessToken ?? entities.ClientCredentials;
    const grantId = entities.AccessToken?.grantId ?? entities.RefreshToken?.grantId;
    write(ctx, {
      type: grantType === 'refresh_token' ? 'token.refreshed' : 'token.issued',
      outcome: 'success',
      userId: entities.Account?.accountId ?? entities.AccessToken?.accountId,
      clientId: client?.clientId,
      sessionId: entities.AccessToken?.sessionUid ?? entities.RefreshToken?.sessionUid,
      details: { grant_type: grantType, scope: token?.scope ?? null, grant_id: grantId ?? null },
    });
  });

  provider.on('grant.error', (ctx: KoaContextWithOIDC, error: unknown) => {
    // oidc-provider's own check (a sequential reuse) or our adapter's (a concurrent one, see server.ts).
    const detail = String((error as { error_detail?: unknown }).error_detail ?? '');
    const reused = error instanceof AlreadyConsumedError || /already (used|consumed)$/.test(detail);
    if (!reused) return;
    const { entities, client } = ctx.oidc;
    const source = entities.RefreshToken ?? entities.AuthorizationCode;
    const grantId = source?.grantId ?? (error instanceof AlreadyConsumedError ? error.grantId : undefined);
    write(ctx, {
      type: 'token.reuse_detected',
      outcome: 'failure',
      userId: source?.accountId,
      clientId: client?.clientId,
      sessionId: source?.sessionUid,
      details: { grant_type: String(ctx.oidc.params?.['grant_type'] ?? ''), grant_id: grantId ?? null, grant_revoked: grantId !== undefined },
    });
  });

  // A device authorization completes on the device pages (the token comes later, at the token endpoint).
  provider.on('authorization.success', (ctx: KoaContextWithOIDC) => {
    if (ctx.oidc.route !== 'code_verification' && ctx.oidc.route !== 'device_resume') return;
    const code = ctx.oidc.entities.DeviceCode;
    write(ctx, {
      type: 'device.approved',
      outcome: 'success',
      userId: code?.accountId,
      clientId: ctx.oidc.client?.clientId,
      sessionId: code?.sessionUid,
      details: { scope: code?.scope ?? null, grant_id: code?.grantId ?? null },
    });
  });

  (provider as unknown as ProviderEvents).on('end_session.success', (ctx: KoaContextWithOIDC) => {
    const session = ctx.oidc.session;
    if (!session?.accountId) return;
    write(ctx, {
      type: 'logout.end_session',
      outcome: 'success',
      userId: session.accountId,
      clientId: ctx.oidc.entities.Client?.clientId,
      sessionId: session.uid,
      // "yes" ends the whole session; otherwise only the app that asked was signed out of it.
      details: { ended: ctx.oidc.params?.['logout'] ? 'session' : 'app' },
    });
  });
}
