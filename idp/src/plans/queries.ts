import { sql, type Kysely, type Selectable } from 'kysely';
import { withUser } from '@jobswipe/adapters';
import type { UserTables } from '../users/tables.ts';
import type { PlansTable, PlanTables, UsageEventsTable } from './tables.ts';

export type PlanRow = Selectable<PlansTable>;
export type UsageEventRow = Selectable<UsageEventsTable>;

type Db = Kysely<PlanTables & UserTables>;

/** A plan's values, validated by the library before they get here. */
export interface PlanValues {
  id: string;
  name: string;
  limits: Record<string, number>;
  desktop_devices: number;
  features: string[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A user and the plan that applies to them (their subscription's, or the default plan). */
export interface UserPlanRow {
  userId: string;
  subscribed: boolean;
  plan: PlanRow | undefined;
}

export interface UsageToRecord {
  clientId: string;
  idempotencyKey: string;
  userId: string;
  meter: string;
  quantity: number;
  limit: number;
  periodStart: Date;
  now: Date;
}

/**
 * What the one recording statement did: `recorded` the counter after this request, `counted` the
 * counter it moved (then rolled back when the key was already taken); both null: over the limit.
 */
interface RecordingOutcome {
  counted: number | null;
  recorded: number | null;
}

/** Thrown inside the recording transaction to roll it back; carries what the statement saw. */
class RolledBack extends Error {
  constructor(readonly outcome: RecordingOutcome) {
    super('rolled back');
  }
}

const asNumber = (value: unknown): number | null => (value === null || value === undefined ? null : Number(value));

export function createPlanQueries(db: Db) {
  const planColumns = ['plans.id', 'plans.name', 'plans.limits', 'plans.desktop_devices', 'plans.features', 'plans.created_at', 'plans.updated_at'] as const;

  return {
    async list(): Promise<PlanRow[]> {
      return db.selectFrom('plans').select(planColumns).orderBy('id').execute();
    },

    async find(id: string): Promise<PlanRow | undefined> {
      return db.selectFrom('plans').select(planColumns).where('id', '=', id).executeTakeFirst();
    },

    /** Creates or replaces a plan; returns the row as it was before (undefined: created). */
    async upsert(plan: PlanValues): Promise<{ before: PlanRow | undefined }> {
      const before = await db.selectFrom('plans').select(planColumns).where('id', '=', plan.id).forUpdate().executeTakeFirst();
      const values = {
        name: plan.name,
        limits: JSON.stringify(plan.limits),
        desktop_devices: plan.desktop_devices,
        features: JSON.stringify(plan.features),
      };
      await db
        .insertInto('plans')
        .values({ id: plan.id, ...values })
        .onConflict((conflict) => conflict.column('id').doUpdateSet({ ...values, updated_at: sql<Date>`now()` }))
        .execute();
      return { before };
    },

    /**
     * The user (undefined: no such user) and the plan that applies: the subscription's, else
     * `defaultPlan`. One query: the usage API's path reads nothing else before it records.
     */
    async planOfUser(userId: string, defaultPlan: string): Promise<UserPlanRow | undefined> {
      if (!UUID.test(userId)) return undefined;
      const row = await db
        .selectFrom('users')
        .leftJoin('subscriptions', 'subscriptions.user_id', 'users.id')
        .leftJoin('plans', (join) => join.on('plans.id', '=', sql<string>`coalesce(${sql.ref('subscriptions.plan_id')}, ${defaultPlan})`))
        .select(['users.id as user_id', 'subscriptions.plan_id as subscribed_plan', ...planColumns])
        .where('users.id', '=', userId)
        .executeTakeFirst();
      if (!row) return undefined;
      const plan =
        row.id === null || row.id === undefined
          ? undefined
          : { id: row.id, name: row.name!, limits: row.limits!, desktop_devices: row.desktop_devices!, features: row.features!, created_at: row.created_at!, updated_at: row.updated_at! };
      return { userId: row.user_id, subscribed: row.subscribed_plan !== null, plan };
    },

    /** The user's subscription, read as the user (row-level security): the account page's path. */
    async ownSubscription(userId: string): Promise<string | undefined> {
      return withUser(db, userId, async (trx) => (await trx.selectFrom('subscriptions').select('plan_id').where('user_id', '=', userId).executeTakeFirst())?.plan_id);
    },

    /** Puts the user on a plan; returns the plan they were subscribed to before (undefined: none). */
    async subscribe(userId: string, planId: string): Promise<string | undefined> {
      const before = await db.selectFrom('subscriptions').select('plan_id').where('user_id', '=', userId).forUpdate().executeTakeFirst();
      await db
        .insertInto('subscriptions')
        .values({ user_id: userId, plan_id: planId })
        .onConflict((conflict) => conflict.column('user_id').doUpdateSet({ plan_id: planId, updated_at: sql<Date>`now()` }))
        .execute();
      return before?.plan_id;
    },

    /**
     * Records usage if it fits: one statement moves the counter only while it stays within `limit`
     * (a conditional upsert: concurrent requests queue on the counter row, and each sees the one
     * before it) and inserts the event, whose primary key (client_id, idempotency_key) makes a second
     * request with the same key wait for the first and then conflict. The transaction is rolled back
     * unless the event was inserted, so a duplicate or a refusal changes nothing.
     */
    async record(usage: UsageToRecord): Promise<RecordingOutcome> {
      try {
        return await db.transaction().execute(async (trx) => {
          const { rows } = await sql<{ counted: unknown; recorded: unknown }>`
            with counted as (
              insert into usage_counters as c (user_id, meter, period_start, used)
              select ${usage.userId}::uuid, ${usage.meter}, ${usage.periodStart}::timestamptz, ${usage.quantity}::integer
              where ${usage.quantity}::integer <= ${usage.limit}::integer
              on conflict (user_id, period_start, meter) do update
                set used = c.used + excluded.used, updated_at = now()
                where c.used + excluded.used <= ${usage.limit}::integer
              returning c.used
            ), recorded as (
              insert into usage_events (client_id, idempotency_key, user_id, meter, quantity, period_start, used_after, limit_at, recorded_at)
              select ${usage.clientId}, ${usage.idempotencyKey}, ${usage.userId}::uuid, ${usage.meter}, ${usage.quantity}::integer,
                     ${usage.periodStart}::timestamptz, counted.used, ${usage.limit}::integer, ${usage.now}::timestamptz
              from counted
              on conflict (client_id, idempotency_key) do nothing
              returning used_after
            )
            select (select used from counted) as counted, (select used_after from recorded) as recorded`.execute(trx);
          const outcome = { counted: asNumber(rows[0]?.counted), recorded: asNumber(rows[0]?.recorded) };
          if (outcome.recorded === null) throw new RolledBack(outcome);
          return outcome;
        });
      } catch (error) {
        if (error instanceof RolledBack) return error.outcome;
        throw error;
      }
    },

    /** The event a client recorded under a key, if any. */
    async findEvent(clientId: string, idempotencyKey: string): Promise<UsageEventRow | undefined> {
      return db.selectFrom('usage_events').selectAll().where('client_id', '=', clientId).where('idempotency_key', '=', idempotencyKey).executeTakeFirst();
    },

    /** A user's counter of one meter in one period (0 when nothing was recorded). */
    async used(userId: string, meter: string, periodStart: Date): Promise<number> {
      const row = await db
        .selectFrom('usage_counters')
        .select('used')
        .where('user_id', '=', userId)
        .where('period_start', '=', periodStart)
        .where('meter', '=', meter)
        .executeTakeFirst();
      return row ? Number(row.used) : 0;
    },

    /** Every counter of a user in one period, read as the user (row-level security). */
    async ownCounters(userId: string, periodStart: Date): Promise<Array<{ meter: string; used: number }>> {
      const rows = await withUser(db, userId, (trx) =>
        trx.selectFrom('usage_counters').select(['meter', 'used']).where('user_id', '=', userId).where('period_start', '=', periodStart).orderBy('meter').execute(),
      );
      return rows.map((row) => ({ meter: row.meter, used: Number(row.used) }));
    },

    /** Deletes events of periods before `keepFrom` (their totals stay in usage_counters). */
    async sweepEvents(keepFrom: Date): Promise<number> {
      const result = await db.deleteFrom('usage_events').where('period_start', '<', keepFrom).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type PlanQueries = ReturnType<typeof createPlanQueries>;
