import { sql, type Kysely, type Selectable } from 'kysely';
import { withUser } from '@jobswipe/adapters';
import type { UserTables } from '../users/tables.ts';
import type { StoredUpstreamSettings, UpstreamIdentitiesTable, UpstreamsTable, UpstreamTables } from './tables.ts';

export type UpstreamRow = Selectable<UpstreamsTable>;
export type IdentityRow = Selectable<UpstreamIdentitiesTable>;

type Db = Kysely<UpstreamTables & UserTables>;

/** An upstream as it is written: its secret already sealed by the library. */
export interface UpstreamValues {
  id: string;
  name: string;
  type: 'oidc' | 'oauth2';
  settings: StoredUpstreamSettings;
  clientId: string;
  clientSecretSealed: string;
}

/** An upstream subject to link to a user. */
export interface IdentityValues {
  upstreamId: string;
  subject: string;
  userId: string;
  email: string | null;
}

/** A sign-in method on /account: the upstream's id and name, and the address it gave. */
export interface LinkedMethod {
  upstreamId: string;
  upstreamName: string;
  email: string | null;
  linkedAt: Date;
}

/** Why an unlink did not happen. */
export type UnlinkOutcome = 'unlinked' | 'not_linked' | 'last_way_in';

export function createUpstreamQueries(db: Db) {
  return {
    async list(): Promise<UpstreamRow[]> {
      return db.selectFrom('upstreams').selectAll().orderBy('id').execute();
    },

    async find(id: string): Promise<UpstreamRow | undefined> {
      return db.selectFrom('upstreams').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** Creates or replaces an upstream; returns the row before, if there was one. */
    async upsert(values: UpstreamValues): Promise<{ before: UpstreamRow | undefined }> {
      const before = await db.selectFrom('upstreams').selectAll().where('id', '=', values.id).forUpdate().executeTakeFirst();
      const row = {
        name: values.name,
        type: values.type,
        settings: JSON.stringify(values.settings),
        client_id: values.clientId,
        client_secret_sealed: values.clientSecretSealed,
      };
      if (before) {
        await db.updateTable('upstreams').set({ ...row, updated_at: sql<Date>`now()` }).where('id', '=', values.id).execute();
      } else {
        await db.insertInto('upstreams').values({ id: values.id, ...row }).execute();
      }
      return { before };
    },

    /** The user an upstream subject is linked to, marking the identity as used now. */
    async useIdentity(upstreamId: string, subject: string): Promise<IdentityRow | undefined> {
      return db
        .updateTable('upstream_identities')
        .set({ last_used_at: sql<Date>`now()` })
        .where('upstream_id', '=', upstreamId)
        .where('subject', '=', subject)
        .returningAll()
        .executeTakeFirst();
    },

    /** Links a subject; false when it is linked already (to this user or another). */
    async link(values: IdentityValues): Promise<boolean> {
      const inserted = await db
        .insertInto('upstream_identities')
        .values({ upstream_id: values.upstreamId, subject: values.subject, user_id: values.userId, email: values.email })
        .onConflict((conflict) => conflict.columns(['upstream_id', 'subject']).doNothing())
        .returning('user_id')
        .executeTakeFirst();
      return inserted !== undefined;
    },

    /** The signed-in user's linked methods, read as that user (row-level security). */
    async methodsOf(userId: string): Promise<LinkedMethod[]> {
      const rows = await withUser(db, userId, (trx) =>
        trx
          .selectFrom('upstream_identities as i')
          .innerJoin('upstreams as u', 'u.id', 'i.upstream_id')
          .select(['i.upstream_id', 'u.name', 'i.email', 'i.linked_at'])
          .where('i.user_id', '=', userId)
          .orderBy('i.linked_at')
          .execute(),
      );
      return rows.map((row) => ({ upstreamId: row.upstream_id, upstreamName: row.name, email: row.email, linkedAt: row.linked_at }));
    },

    /**
     * Removes the user's identities at one upstream, unless that leaves no way in (no password and no
     * other upstream). The user's row is locked first, so two unlinks at once cannot each leave the other.
     */
    async unlink(userId: string, upstreamId: string): Promise<UnlinkOutcome> {
      return withUser(db, userId, async (trx) => {
        const user = await trx.selectFrom('users').select(['id', 'password_hash']).where('id', '=', userId).forUpdate().executeTakeFirst();
        if (!user) return 'not_linked';
        const methods = await trx.selectFrom('upstream_identities').select(['upstream_id']).where('user_id', '=', userId).execute();
        if (!methods.some((method) => method.upstream_id === upstreamId)) return 'not_linked';
        const others = methods.filter((method) => method.upstream_id !== upstreamId).length;
        if (user.password_hash === null && others === 0) return 'last_way_in';
        await trx.deleteFrom('upstream_identities').where('user_id', '=', userId).where('upstream_id', '=', upstreamId).execute();
        return 'unlinked';
      });
    },
  };
}

export type UpstreamQueries = ReturnType<typeof createUpstreamQueries>;
