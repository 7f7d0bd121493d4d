import type { ColumnType } from 'kysely';

/** jsonb columns: parsed on the way out, written as JSON text. */
type Json<T> = ColumnType<T, string, string>;

export interface PlansTable {
  id: string;
  name: string;
  limits: Json<Record<string, number>>;
  desktop_devices: number;
  features: Json<string[]>;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface SubscriptionsTable {
  user_id: string;
  plan_id: string;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface UsageCountersTable {
  user_id: string;
  meter: string;
  period_start: Date;
  used: number;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface UsageEventsTable {
  client_id: string;
  idempotency_key: string;
  user_id: string;
  meter: string;
  quantity: number;
  period_start: Date;
  used_after: number;
  limit_at: number;
  recorded_at: ColumnType<Date, Date | undefined, never>;
}

export interface PlanTables {
  plans: PlansTable;
  subscriptions: SubscriptionsTable;
  usage_counters: UsageCountersTable;
  usage_events: UsageEventsTable;
}
