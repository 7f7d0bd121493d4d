import type { Kysely } from 'kysely';
import { withUser, type OidcTables } from '@jobswipe/adapters';
import type { AuditTables } from '../audit/tables.ts';
import type { SessionTables } from '../sessions/tables.ts';
import type { UserTables } from '../users/tables.ts';
import { accountCacheOf } from '../users/queries.ts';
import type { UpstreamTables } from '../upstreams/tables.ts';
import type { MfaTables } from '../mfa/tables.ts';

export type PersonalDataTables = UserTables & SessionTables & OidcTables & AuditTables & UpstreamTables & MfaTables;

/** What "Download my data" answers: everything we keep about the user, and no secret. */
export interface PersonalDataExport {
  exported_at: string;
  profile: { id: string; email: string; email_verified: boolean; name: string; created_at: string; updated_at: string };
  sessions: Array<{
    id: string;
    started_at: string;
    last_seen_at: string;
    expires_at: string;
    ended_at: string | null;
    end_reason: string | null;
    device: string;
    user_agent: string;
    ip: string;
  }>;
  connected_apps: Array<{ client_id: string; scopes: string[]; granted_at: string | null; expires_at: string | null }>;
  /** Upstream identities (social login) linked to the account: docs/social-login.md. */
  linked_sign_in_methods: Array<{ upstream: string; subject: string; email: string | null; linked_at: string; last_used_at: string }>;
  /** Which second factors the account has; never the app's secret, a recovery code or a public key. */
  two_factor: {
    authenticator_app_on_since: string | null;
    recovery_codes_left: number;
    passkeys: Array<{ name: string; added_at: string; last_used_at: string | null }>;
  };
  audit_events: Array<{
    id: number;
    occurred_at: string;
    type: string;
    outcome: string;
    client_id: string | null;
    session_id: string | null;
    ip: string | null;
    user_agent: string | null;
    details: Record<string, unknown>;
  }>;
}

const iso = (value: Date | string | null | undefined) => (value === null || value === undefined ? null : new Date(value).toISOString());
const fromEpoch = (value: unknown) => (typeof value === 'number' ? new Date(value * 1000).toISOString() : null);

function scopesOf(payload: Record<string, unknown>): string[] {
  const scopes = new Set<string>();
  const openid = payload['openid'] as { scope?: unknown } | undefined;
  if (typeof openid?.scope === 'string') openid.scope.split(' ').forEach((scope) => scope && scopes.add(scope));
  for (const scope of Object.values((payload['resources'] as Record<string, unknown> | undefined) ?? {})) {
    if (typeof scope === 'string') scope.split(' ').forEach((part) => part && scopes.add(part));
  }
  return [...scopes];
}

/**
 * The user's personal data as a whole: the export ("Download my data") and the erasure ("Delete my
 * account"). The export reads the row-level-security tables as the user (withUser); audit_events has
 * no row-level security and is read by user id on the system path. The erasure is system path.
 */
export function createPersonalData(db: Kysely<PersonalDataTables>) {
  return {
    /** undefined when the user does not exist (any more). */
    async exportOf(userId: string): Promise<PersonalDataExport | undefined> {
      const own = await withUser(db, userId, async (trx) => {
        const user = await trx
          .selectFrom('users')
          // Never the password hash.
          .select(['id', 'email', 'email_verified', 'name', 'created_at', 'updated_at'])
          .where('id', '=', userId)
          .executeTakeFirst();
        const sessions = await trx.selectFrom('user_sessions').selectAll().where('user_id', '=', userId).orderBy('started_at').orderBy('session_uid').execute();
        // Grants only: the tokens under them are credentials, not data about the user.
        const grants = await trx
          .selectFrom('oidc_models')
          .select(['payload', 'expires_at'])
          .where('model', '=', 'Grant')
          .where('account_id', '=', userId)
          .orderBy('id')
          .execute();
        const identities = await trx.selectFrom('upstream_identities').selectAll().where('user_id', '=', userId).orderBy('linked_at').execute();
        const passkeys = await trx.selectFrom('passkeys').select(['name', 'created_at', 'last_used_at']).where('user_id', '=', userId).orderBy('created_at').execute();
        return { user, sessions, grants, identities, passkeys };
      });
      if (!own.user) return undefined;
      // The factor rows are closed to the user role (docs/database.md): read on the system path, by user id.
      const app = await db.selectFrom('totp_factors').select('enabled_at').where('user_id', '=', userId).executeTakeFirst();
      const codes = await db
        .selectFrom('recovery_codes')
        .select((eb) => eb.fn.countAll<string | number>().as('count'))
        .where('user_id', '=', userId)
        .where('used_at', 'is', null)
        .executeTakeFirstOrThrow();
      const events = await db
        .selectFrom('audit_events')
        .select(['id', 'occurred_at', 'event_type', 'outcome', 'client_id', 'session_id', 'ip', 'user_agent', 'details'])
        .where('user_id', '=', userId.toLowerCase())
        .orderBy('id')
        .execute();
      return {
        exported_at: new Date().toISOString(),
        profile: {
          id: own.user.id,
          email: own.user.email,
          email_verified: own.user.email_verified,
          name: own.user.name,
          created_at: iso(own.user.created_at)!,
          updated_at: iso(own.user.updated_at)!,
        },
        sessions: own.sessions.map((row) => ({
          id: row.session_uid,
          started_at: iso(row.started_at)!,
          last_seen_at: iso(row.last_seen_at)!,
          expires_at: iso(row.expires_at)!,
          ended_at: iso(row.ended_at),
          end_reason: row.end_reason,
          device: row.device,
          user_agent: row.user_agent,
          ip: row.ip,
        })),
        connected_apps: own.grants.map(({ payload, expires_at }) => ({
          client_id: String(payload['clientId'] ?? ''),
          scopes: scopesOf(payload),
          granted_at: fromEpoch(payload['iat']),
          expires_at: iso(expires_at),
        })),
        linked_sign_in_methods: own.identities.map((row) => ({
          upstream: row.upstream_id,
          subject: row.subject,
          email: row.email,
          linked_at: iso(row.linked_at)!,
          last_used_at: iso(row.last_used_at)!,
        })),
        two_factor: {
          authenticator_app_on_since: iso(app?.enabled_at),
          recovery_codes_left: Number(codes.count),
          passkeys: own.passkeys.map((row) => ({ name: row.name, added_at: iso(row.created_at)!, last_used_at: iso(row.last_used_at) })),
        },
        audit_events: events.map((event) => ({
          id: Number(event.id),
          occurred_at: iso(event.occurred_at)!,
          type: event.event_type,
          outcome: event.outcome,
          client_id: event.client_id,
          session_id: event.session_id,
          ip: event.ip,
          user_agent: event.user_agent,
          details: event.details,
        })),
      };
    },

    /**
     * Deletes the user's personal data, on the system path (the user role may not delete): what is
     * left in oidc_models under their account (grants, tokens, sessions, interactions, revoked or
     * expired), then the users row, which takes user_sessions and upstream_identities with it (ON DELETE
     * CASCADE). Audit rows stay: they carry the uuid, never the email, so they are pseudonymous once the row is gone.
     */
    async erase(userId: string): Promise<{ deleted: boolean }> {
      const erased = await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('oidc_models').where('account_id', '=', userId.toLowerCase()).execute();
        const deleted = await trx.deleteFrom('users').where('id', '=', userId).executeTakeFirst();
        return { deleted: Number(deleted.numDeletedRows) > 0 };
      });
      accountCacheOf(db).changed(userId);
      return erased;
    },
  };
}

export type PersonalData = ReturnType<typeof createPersonalData>;
