export { openDatabase } from './database.ts';
export type { Database, StoreOptions } from './database.ts';
export { StoreInUseError } from './store-in-use.ts';
export { createOidcAdapter, sweepExpired, AlreadyConsumedError } from './oidc-adapter.ts';
export type { OidcTables, OidcModelsTable } from './tables.ts';
