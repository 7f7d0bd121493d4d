import type { ColumnType } from 'kysely';

export interface UserSessionsTable {
  session_uid: string;
  user_id: string;
  started_at: Date;
  last_seen_at: Date;
  expires_at: Date;
  device: string;
  user_agent: string;
  ip: string;
  ended_at: ColumnType<Date | null, Date | null | undefined, Date | null>;
  end_reason: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SessionTables {
  user_sessions: UserSessionsTable;
}
