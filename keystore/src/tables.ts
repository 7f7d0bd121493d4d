import type { ColumnType } from 'kysely';
import type { JWK } from 'jose';
import type { KeyState } from './lifecycle.ts';

export interface SigningKeysTable {
  kid: string;
  alg: string;
  state: KeyState;
  public_jwk: ColumnType<JWK, string, string>;
  /** Only rows written before envelopes existed; sealed and cleared when the keystore opens. */
  private_jwk: ColumnType<JWK | null, string | null, string | null>;
  /** The private key as a JWE envelope under the key-encryption key; null once revoked. */
  private_key_jwe: string | null;
  created_at: ColumnType<Date, never, never>;
  activates_at: Date | null;
  retires_at: Date | null;
  revoked_at: Date | null;
}

export interface KeystoreSettingsTable {
  singleton: ColumnType<boolean, boolean | undefined, never>;
  kek_id: string;
  /** The data key for sealed column values, as a JWE under the key-encryption key. */
  column_key_jwe: ColumnType<string | null, string | null | undefined, string | null>;
  updated_at: ColumnType<Date, Date | undefined, Date>;
}

export interface KeystoreTables {
  signing_keys: SigningKeysTable;
  keystore_settings: KeystoreSettingsTable;
}
