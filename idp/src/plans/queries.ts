import { sql, type Kysely, type Selectable } from 'kysely';
import { withUser } from '@jobswipe/adapters';
import type { UserTables } from '../users/tables.ts';
import type { PlansTable, PlanTables } from './tables.ts';

export type PlanRow = Selectable<PlansTable>;

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
  periodStart: Date;
  /** The plan of a user without a subscription (DEFAULT_PLAN). */
  defaultPlan: string;
  now: Date;
}

/** What record_usage did (migrations/sql/0017_plans_and_usage.sql), and the answer that goes with it. */
export type RecordingOutcome =
  | { outcome: 'unknown_user' }
  | { outcome: 'no_plan' }
  | { outcome: 'recorded' | 'repeated' | 'over_limit'; used: number; limit: number; periodStart: Date; userId: string; meter: string; quantity: number };

interface RecordUsageRow {
  outcome: string;
  r_used: unknown;
  r_limit: unknown;
  r_period_start: Date | string | null;
  r_user_id: string | null;
  r_meter: string | null;
  r_quantity: unknown;
}

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
     * Records usage if it fits, once per (client, idempotency key): one statement, record_usage (the
     * migration says how it holds the limit and the key under concurrency), so one round trip.
     */
    async record(usage: UsageToRecord): Promise<RecordingOutcome> {
      const { rows } = await sql<RecordUsageRow>`
        select * from record_usage(${usage.clientId}, ${usage.idempotencyKey}, ${usage.userId}::uuid, ${usage.meter}, ${usage.quantity}::integer,
                                   ${usage.periodStart}::timestamptz, ${usage.defaultPlan}, ${usage.now}::timestamptz)`.execute(db);
      const row = rows[0];
      if (!row) throw new Error('record_usage answered no row');
      if (row.outcome === 'unknown_user') return { outcome: 'unknown_user' };
      if (row.outcome === 'no_plan') return { outcome: 'no_plan' };
      if (row.outcome !== 'recorded' && row.outcome !== 'repeated' && row.outcome !== 'over_limit') throw new Error(`record_usage answered ${row.outcome}`);
      return {
        outcome: row.outcome,
        used: Number(row.r_used),
        limit: Number(row.r_limit),
        periodStart: new Date(row.r_period_start!),
        userId: String(row.r_user_id),
        meter: String(row.r_meter),
        quantity: Number(row.r_quantity),
      };
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
