import type { ColumnType } from 'kysely';

/** Flat details only: strings, numbers and booleans, so their canonical encoding is unambiguous. */
export type AuditDetails = Record<string, string | number | boolean | null>;

/** bigint: a string from pg, a number or bigint from PGlite. */
type BigintColumn<Insert> = ColumnType<string | number | bigint, Insert, never>;

export interface AuditEventsTable {
  // From the sequence audit_events_id_seq (0014_audit_seals.sql).
  id: BigintColumn<never>;
  occurred_at: ColumnType<Date, Date, never>;
  event_type: ColumnType<string, string, never>;
  outcome: ColumnType<string, string, never>;
  user_id: ColumnType<string | null, string | null, never>;
  client_id: ColumnType<string | null, string | null, never>;
  session_id: ColumnType<string | null, string | null, never>;
  ip: ColumnType<string | null, string | null, never>;
  user_agent: ColumnType<string | null, string | null, never>;
  details: ColumnType<AuditDetails, string, never>;
  /** The inserting transaction (xid8, as text), set by a trigger; null on events older than the seals. */
  tx: ColumnType<string | null, never, never>;
}

/** The chain: one seal per event, at positions 1, 2, 3... */
export interface AuditSealsTable {
  seq: BigintColumn<number>;
  event_id: BigintColumn<number>;
  prev_hash: ColumnType<string, string, never>;
  hash: ColumnType<string, string, never>;
  sealed_at: ColumnType<Date, Date | undefined, never>;
  /** A pg_snapshot in its text form (xmin:xmax:xip,...), on the last seal of a complete pass. */
  horizon: ColumnType<string | null, string | null, never>;
}

export interface AuditTables {
  audit_events: AuditEventsTable;
  audit_seals: AuditSealsTable;
}
