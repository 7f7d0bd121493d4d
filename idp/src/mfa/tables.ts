import type { ColumnType } from 'kysely';

/** bigint: a string from pg, a number or bigint from PGlite. */
type BigintColumn = ColumnType<string | number | bigint, number | undefined, number>;
/** jsonb columns: parsed on the way out, written as JSON text. */
type Json<T> = ColumnType<T, string | undefined, string>;

export interface TotpFactorsTable {
  user_id: string;
  secret_sealed: string;
  enabled_at: Date | null;
  last_time_step: number | null;
  created_at: ColumnType<Date, Date | undefined, Date>;
}

export interface RecoveryCodesTable {
  user_id: string;
  code_hash: string;
  created_at: ColumnType<Date, never, never>;
  used_at: Date | null;
}

export interface PasskeysTable {
  credential_id: string;
  user_id: string;
  public_key: string;
  counter: BigintColumn;
  transports: Json<string[]>;
  name: string;
  created_at: ColumnType<Date, never, never>;
  last_used_at: Date | null;
}

export interface MfaTables {
  totp_factors: TotpFactorsTable;
  recovery_codes: RecoveryCodesTable;
  passkeys: PasskeysTable;
}
