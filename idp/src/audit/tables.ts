import type { ColumnType } from 'kysely';

/** Flat details only: strings, numbers and booleans, so their canonical encoding is unambiguous. */
export type AuditDetails = Record<string, string | number | boolean | null>;

export interface AuditEventsTable {
  // bigint: a string from pg, a number or bigint from PGlite; written as a number.
  id: ColumnType<string | number | bigint, number, never>;
  occurred_at: ColumnType<Date, Date, never>;
  event_type: ColumnType<string, string, never>;
  outcome: ColumnType<string, string, never>;
  user_id: ColumnType<string | null, string | null, never>;
  client_id: ColumnType<string | null, string | null, never>;
  session_id: ColumnType<string | null, string | null, never>;
  ip: ColumnType<string | null, string | null, never>;
  user_agent: ColumnType<string | null, string | null, never>;
  details: ColumnType<AuditDetails, string, never>;
  prev_hash: ColumnType<string, string, never>;
  hash: ColumnType<string, string, never>;
}

export interface AuditTables {
  audit_events: AuditEventsTable;
}
