import { sql, type Kysely, type Selectable } from 'kysely';
import { withUser } from '@jobswipe/adapters';
import { describeDevice, USER_AGENT_MAX } from './device.ts';
import type { SessionTables, UserSessionsTable } from './tables.ts';

export type SessionRow = Selectable<UserSessionsTable>;

export interface SessionSighting {
  uid: string;
  userId: string;
  /** When the user signed in (the provider's loginTs). */
  startedAt: Date;
  expiresAt: Date;
  userAgent: string;
  ip: string;
}

/** Why a session ended, as shown to administrators. */
export type EndReason = 'signed out' | 'signed out from account page' | 'revoked by administrator' | 'expired' | 'password changed' | 'password reset' | 'account deleted';

/**
 * The list of a user's browser sessions. The provider's Session object decides whether a session
 * is alive; a row here says who it belongs to and how to describe it.
 */
export function createSessionRegistry(db: Kysely<SessionTables>) {
  return {
    /** Records a sign-in or a later use of a session (its last-seen time, agent and address). */
    async record(sighting: SessionSighting): Promise<void> {
      const userAgent = sighting.userAgent.slice(0, USER_AGENT_MAX);
      const values = {
        device: describeDevice(userAgent),
        user_agent: userAgent,
        ip: sighting.ip.slice(0, 64),
        expires_at: sighting.expiresAt,
      };
      await db
        .insertInto('user_sessions')
        .values({
          session_uid: sighting.uid,
          user_id: sighting.userId,
          started_at: sighting.startedAt,
          last_seen_at: sql<Date>`now()`,
          ...values,
        })
        .onConflict((conflict) => conflict.column('session_uid').doUpdateSet({ ...values, last_seen_at: sql<Date>`now()` }))
        .execute();
    },

    async touch(uid: string): Promise<void> {
      await db.updateTable('user_sessions').set({ last_seen_at: sql<Date>`now()` }).where('session_uid', '=', uid).execute();
    },

    /** Sessions not known to have ended, most recently used first; read as the user (row-level security). */
    async active(userId: string): Promise<SessionRow[]> {
      return withUser(db, userId, (trx) =>
        trx
          .selectFrom('user_sessions')
          .selectAll()
          .where('user_id', '=', userId)
          .where('ended_at', 'is', null)
          .where('expires_at', '>', sql<Date>`now()`)
          .orderBy('last_seen_at', 'desc')
          .orderBy('session_uid')
          .execute(),
      );
    },

    async find(uid: string): Promise<SessionRow | undefined> {
      return db.selectFrom('user_sessions').selectAll().where('session_uid', '=', uid).executeTakeFirst();
    },

    /**
     * Marks a session ended. Given `userId`, only if it is that user's: the update runs as the user, so
     * row-level security holds it to their rows; without, it is the system path (a sign-out by uid).
     */
    async end(uid: string, reason: EndReason, userId?: string): Promise<void> {
      const endSession = (executor: Kysely<SessionTables>) =>
        executor
          .updateTable('user_sessions')
          .set({ ended_at: sql<Date>`now()`, end_reason: reason })
          .where('session_uid', '=', uid)
          .where('ended_at', 'is', null);
      if (userId === undefined) {
        await endSession(db).execute();
        return;
      }
      await withUser(db, userId, (trx) => endSession(trx).where('user_id', '=', userId).execute());
    },

    /** Deletes rows of sessions that expired, or ended more than `keepDays` ago. */
    async sweep(keepDays = 30): Promise<number> {
      const result = await db
        .deleteFrom('user_sessions')
        .where((eb) =>
          eb.or([
            eb('expires_at', '<=', sql<Date>`now()`),
            eb('ended_at', '<=', sql<Date>`now() - make_interval(days => ${keepDays})`),
          ]),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type SessionRegistry = ReturnType<typeof createSessionRegistry>;
