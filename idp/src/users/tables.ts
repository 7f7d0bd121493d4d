import type { ColumnType, Generated } from 'kysely';

export interface UsersTable {
  id: Generated<string>;
  email: string;
  email_verified: ColumnType<boolean, boolean | undefined, boolean>;
  name: ColumnType<string, string | undefined, string>;
  password_hash: string | null;
  created_at: ColumnType<Date, never, never>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
  disabled_at: Date | null;
}

export interface UserTables {
  users: UsersTable;
}
