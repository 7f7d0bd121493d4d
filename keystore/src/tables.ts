import type { ColumnType } from 'kysely';
import type { JWK } from 'jose';

export type KeyState = 'next' | 'current' | 'retired';

export interface SigningKeysTable {
  kid: string;
  alg: string;
  state: KeyState;
  public_jwk: ColumnType<JWK, string, string>;
  private_jwk: ColumnType<JWK, string, string>;
  created_at: ColumnType<Date, never, never>;
  activates_at: Date | null;
  retires_at: Date | null;
}

export interface KeystoreTables {
  signing_keys: SigningKeysTable;
}
