import type { ColumnType, Generated } from 'kysely';

export interface OidcModelsTable {
  model: string;
  id: string;
  payload: ColumnType<Record<string, unknown>, string, string>;
  grant_id: Generated<string | null>;
  user_code: Generated<string | null>;
  uid: Generated<string | null>;
  account_id: Generated<string | null>;
  expires_at: Date | null;
  consumed_at: Date | null;
}

export interface OidcTables {
  oidc_models: OidcModelsTable;
}
