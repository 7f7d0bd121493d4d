import { sql, type Kysely } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { withUser, type OidcTables } from '@jobswipe/adapters';
import { ACCOUNT_CLIENT_ID } from '../clients/account-client.ts';
import { revokeGrant } from './revoke-grant.ts';
import type { DeliveryResult, LogoutNotice } from './delivery.ts';
import type { EndReason, SessionRegistry } from './registry.ts';

export interface AttachedApp {
  clientId: string;
  clientName: string;
  grantId: string | undefined;
  sid: string | undefined;
}

export interface SessionView {
  uid: string;
  startedAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  device: string;
  userAgent: string;
  ip: string;
  apps: AttachedApp[];
}

export interface ConnectedApp {
  clientId: string;
  clientName: string;
  scopes: string[];
  /** When the user first granted this app access (its oldest live grant). */
  since: Date;
  grants: number;
}

/** A desktop sign-in: a live grant of a native client (application_type native), one per device. */
export interface DesktopDevice {
  grantId: string;
  clientId: string;
  clientName: string;
  /** When the device signed in (its grant was created). */
  since: Date;
}

export interface RevocationOutcome {
  sessionsEnded: number;
  grantsRevoked: number;
  /** Logout tokens sent; undefined when they were handed to the background sender. */
  deliveries: DeliveryResult[] | undefined;
}

export interface SessionServiceDependencies {
  db: Kysely<OidcTables>;
  adapter: new (name: string) => Adapter;
  registry: SessionRegistry;
  /** Sends logout tokens: in the background (the server) or awaited (the CLI, which reports results). */
  sendLogout(notices: LogoutNotice[]): Promise<DeliveryResult[]> | void;
}

interface StoredSession extends AdapterPayload {
  accountId?: string;
  authorizations?: Record<string, { sid?: string; grantId?: string; persistsLogout?: boolean }>;
}

const now = () => Math.floor(Date.now() / 1000);

/**
 * Sessions and connected apps of a user, and their revocation: the logic behind /account and `idp sessions`.
 * Reads keyed by the user run as that user (withUser: row-level security); lookups by id through the
 * provider's adapter (sessions, clients) and the revocations themselves are the system path.
 */
export function createSessionService(deps: SessionServiceDependencies) {
  const sessions = new deps.adapter('Session');
  const clients = new deps.adapter('Client');

  async function client(clientId: string): Promise<AdapterPayload | undefined> {
    return (await clients.find(clientId)) ?? undefined;
  }

  async function clientName(clientId: string): Promise<string> {
    const metadata = await client(clientId);
    const name = metadata?.['client_name'];
    return typeof name === 'string' && name !== '' ? name : clientId;
  }

  async function logoutNotice(clientId: string, sub: string, sid: string | undefined): Promise<LogoutNotice | undefined> {
    const uri = (await client(clientId))?.['backchannel_logout_uri'];
    return typeof uri === 'string' ? { clientId, uri, sub, sid } : undefined;
  }

  /** The provider's live session for a registry row, or undefined when it has ended. */
  async function live(uid: string, userId: string): Promise<StoredSession | undefined> {
    const stored = (await sessions.findByUid(uid)) as StoredSession | undefined;
    if (!stored || stored.accountId !== userId || (typeof stored.exp === 'number' && stored.exp <= now())) return undefined;
    return stored;
  }

  /** The user's live grants, read as the user (row-level security); revoking them is the system path. */
  async function grantsOf(userId: string, clientId?: string) {
    return withUser(deps.db, userId, (trx) => {
      let query = trx
        .selectFrom('oidc_models')
        .select(['id', 'payload'])
        .where('model', '=', 'Grant')
        .where('account_id', '=', userId)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]));
      if (clientId !== undefined) query = query.where(sql`payload ->> 'clientId'`, '=', clientId);
      return query.execute();
    });
  }

  async function dispatch(notices: Array<LogoutNotice | undefined>): Promise<DeliveryResult[] | undefined> {
    const defined = notices.filter((notice): notice is LogoutNotice => notice !== undefined);
    if (defined.length === 0) return [];
    return (await deps.sendLogout(defined)) ?? undefined;
  }

  /** Ends one live session: its grants and every token under them, then the session itself. */
  async function endSession(userId: string, uid: string, reason: EndReason) {
    const stored = await live(uid, userId);
    // Only the user's own row: a uid of someone else's session must change nothing.
    await deps.registry.end(uid, stored ? reason : 'expired', userId);
    if (!stored) return { ended: false, grants: 0, notices: [] as Array<LogoutNotice | undefined> };
    const authorizations = Object.entries(stored.authorizations ?? {});
    const notices: Array<LogoutNotice | undefined> = [];
    let grants = 0;
    for (const [clientId, authorization] of authorizations) {
      // Revocation from /account or by an administrator kills offline_access grants too.
      if (authorization.grantId) {
        await revokeGrant(deps.adapter, authorization.grantId);
        grants += 1;
      }
      notices.push(await logoutNotice(clientId, userId, authorization.sid));
    }
    if (typeof stored.jti === 'string') await sessions.destroy(stored.jti);
    return { ended: true, grants, notices };
  }

  async function endSessions(userId: string, which: (uid: string) => boolean, reason: EndReason) {
    const total = { sessions: 0, grants: 0, notices: [] as Array<LogoutNotice | undefined> };
    for (const row of await deps.registry.active(userId)) {
      if (!which(row.session_uid)) continue;
      const ended = await endSession(userId, row.session_uid, reason);
      if (ended.ended) total.sessions += 1;
      total.grants += ended.grants;
      total.notices.push(...ended.notices);
    }
    return total;
  }

  /**
   * Revokes every grant the user still holds (offline ones, those of a kept session); apps not yet in
   * `notices` get a logout token naming the user rather than a session.
   */
  async function revokeRemainingGrants(userId: string, notices: Array<LogoutNotice | undefined>) {
    const notified = new Set(notices.map((notice) => notice?.clientId));
    const remaining = await grantsOf(userId);
    const clientIds = new Set<string>();
    for (const grant of remaining) {
      await revokeGrant(deps.adapter, grant.id);
      clientIds.add(String(grant.payload['clientId'] ?? ''));
    }
    const all = [...notices];
    for (const clientId of clientIds) {
      if (clientId && !notified.has(clientId)) all.push(await logoutNotice(clientId, userId, undefined));
    }
    return { grants: remaining.length, notices: all };
  }

  const isNative = async (clientId: string) => (await client(clientId))?.['application_type'] === 'native';

  const service = {
    /** The user's desktop sign-ins, oldest first: what a plan's desktop_devices limits. */
    async desktopDevices(userId: string): Promise<DesktopDevice[]> {
      const devices: DesktopDevice[] = [];
      for (const { id, payload } of await grantsOf(userId)) {
        const clientId = String(payload['clientId'] ?? '');
        if (clientId === '' || clientId === ACCOUNT_CLIENT_ID || !(await isNative(clientId))) continue;
        devices.push({ grantId: id, clientId, clientName: await clientName(clientId), since: new Date(Number(payload['iat'] ?? now()) * 1000) });
      }
      return devices.sort((a, b) => a.since.getTime() - b.since.getTime() || a.grantId.localeCompare(b.grantId));
    },

    /**
     * Signs one desktop device out: its grant and every token under it, and its place in the user's
     * sessions; the app is told through back-channel logout. Only a device of this user (found as the user).
     */
    async signOutDevice(userId: string, grantId: string): Promise<RevocationOutcome & { found: boolean; clientId?: string }> {
      const device = (await service.desktopDevices(userId)).find((candidate) => candidate.grantId === grantId);
      if (!device) return { found: false, sessionsEnded: 0, grantsRevoked: 0, deliveries: [] };
      await revokeGrant(deps.adapter, grantId);
      const notices: Array<LogoutNotice | undefined> = [];
      for (const row of await deps.registry.active(userId)) {
        const stored = await live(row.session_uid, userId);
        const authorization = stored?.authorizations?.[device.clientId];
        if (!stored || authorization?.grantId !== grantId || typeof stored.jti !== 'string') continue;
        delete stored.authorizations![device.clientId];
        const ttl = typeof stored.exp === 'number' ? stored.exp - now() : 0;
        if (ttl > 0) await sessions.upsert(stored.jti, stored, ttl);
        notices.push(await logoutNotice(device.clientId, userId, authorization.sid));
      }
      // No session names this grant: no logout token, since one naming only the user would end the app's other devices too.
      return { found: true, clientId: device.clientId, sessionsEnded: 0, grantsRevoked: 1, deliveries: await dispatch(notices) };
    },

    async list(userId: string): Promise<SessionView[]> {
      const views: SessionView[] = [];
      for (const row of await deps.registry.active(userId)) {
        const stored = await live(row.session_uid, userId);
        if (!stored) {
          await deps.registry.end(row.session_uid, 'expired', userId);
          continue;
        }
        const apps: AttachedApp[] = [];
        for (const [clientId, authorization] of Object.entries(stored.authorizations ?? {})) {
          if (clientId === ACCOUNT_CLIENT_ID) continue;
          apps.push({ clientId, clientName: await clientName(clientId), grantId: authorization.grantId, sid: authorization.sid });
        }
        views.push({
          uid: row.session_uid,
          startedAt: row.started_at,
          lastSeenAt: row.last_seen_at,
          expiresAt: row.expires_at,
          device: row.device,
          userAgent: row.user_agent,
          ip: row.ip,
          apps,
        });
      }
      return views;
    },

    async connectedApps(userId: string): Promise<ConnectedApp[]> {
      const byClient = new Map<string, ConnectedApp>();
      for (const { payload } of await grantsOf(userId)) {
        const clientId = String(payload['clientId'] ?? '');
        if (clientId === '' || clientId === ACCOUNT_CLIENT_ID) continue;
        const scopes = new Set<string>();
        const openid = payload['openid'] as { scope?: string } | undefined;
        openid?.scope?.split(' ').forEach((scope) => scope && scopes.add(scope));
        for (const scope of Object.values((payload['resources'] as Record<string, string> | undefined) ?? {})) {
          scope.split(' ').forEach((part) => part && scopes.add(part));
        }
        const since = new Date(Number(payload['iat'] ?? now()) * 1000);
        const existing = byClient.get(clientId);
        if (existing) {
          existing.grants += 1;
          if (since < existing.since) existing.since = since;
          existing.scopes = [...new Set([...existing.scopes, ...scopes])];
        } else {
          byClient.set(clientId, { clientId, clientName: await clientName(clientId), scopes: [...scopes], since, grants: 1 });
        }
      }
      return [...byClient.values()].sort((a, b) => a.clientName.localeCompare(b.clientName));
    },

    /** Whether a live session with this uid belongs to the user. */
    async owns(userId: string, uid: string): Promise<boolean> {
      return (await live(uid, userId)) !== undefined;
    },

    async revokeSession(userId: string, uid: string, reason: EndReason): Promise<RevocationOutcome & { found: boolean }> {
      const ended = await endSession(userId, uid, reason);
      return { found: ended.ended, sessionsEnded: ended.ended ? 1 : 0, grantsRevoked: ended.grants, deliveries: await dispatch(ended.notices) };
    },

    async revokeOtherSessions(userId: string, keepUid: string, reason: EndReason): Promise<RevocationOutcome> {
      const ended = await endSessions(userId, (uid) => uid !== keepUid, reason);
      return { sessionsEnded: ended.sessions, grantsRevoked: ended.grants, deliveries: await dispatch(ended.notices) };
    },

    /**
     * Revokes an app's access: every grant the user gave it (its refresh and access tokens die with
     * them) and its place in the user's sessions; the app is told through back-channel logout.
     */
    async revokeApp(userId: string, clientId: string): Promise<RevocationOutcome> {
      const grants = await grantsOf(userId, clientId);
      for (const grant of grants) await revokeGrant(deps.adapter, grant.id);
      const notices: Array<LogoutNotice | undefined> = [];
      for (const row of await deps.registry.active(userId)) {
        const stored = await live(row.session_uid, userId);
        const authorization = stored?.authorizations?.[clientId];
        if (!stored || !authorization || typeof stored.jti !== 'string') continue;
        delete stored.authorizations![clientId];
        const ttl = typeof stored.exp === 'number' ? stored.exp - now() : 0;
        if (ttl > 0) await sessions.upsert(stored.jti, stored, ttl);
        notices.push(await logoutNotice(clientId, userId, authorization.sid));
      }
      // An app holding only offline tokens has no session here: its logout token names the user.
      if (notices.length === 0 && grants.length > 0) notices.push(await logoutNotice(clientId, userId, undefined));
      return { sessionsEnded: 0, grantsRevoked: grants.length, deliveries: await dispatch(notices) };
    },

    /** Everything: every session, and every grant the user gave any app (offline ones included). */
    async revokeAll(userId: string, reason: EndReason): Promise<RevocationOutcome> {
      const ended = await endSessions(userId, () => true, reason);
      const remaining = await revokeRemainingGrants(userId, ended.notices);
      return { sessionsEnded: ended.sessions, grantsRevoked: ended.grants + remaining.grants, deliveries: await dispatch(remaining.notices) };
    },

    /**
     * Every grant and every session but `keepUid` (after a password change): the kept session stays
     * signed in, but the apps attached to it lose their grants, are detached and told, like the others.
     */
    async revokeAllButSession(userId: string, keepUid: string, reason: EndReason): Promise<RevocationOutcome> {
      const ended = await endSessions(userId, (uid) => uid !== keepUid, reason);
      const notices = [...ended.notices];
      const kept = await live(keepUid, userId);
      if (kept && typeof kept.jti === 'string' && kept.authorizations) {
        for (const [clientId, authorization] of Object.entries(kept.authorizations)) {
          if (clientId !== ACCOUNT_CLIENT_ID) notices.push(await logoutNotice(clientId, userId, authorization.sid));
        }
        // The grants themselves are revoked below, with every other grant of the user.
        kept.authorizations = {};
        const ttl = typeof kept.exp === 'number' ? kept.exp - now() : 0;
        if (ttl > 0) await sessions.upsert(kept.jti, kept, ttl);
      }
      const remaining = await revokeRemainingGrants(userId, notices);
      return { sessionsEnded: ended.sessions, grantsRevoked: ended.grants + remaining.grants, deliveries: await dispatch(remaining.notices) };
    },
  };
  return service;
}

export type SessionService = ReturnType<typeof createSessionService>;
