export { openDatabase } from './database.ts';
export type { Database, StoreOptions } from './database.ts';
export { StoreInUseError } from './store-in-use.ts';
export { createOidcAdapter, sweepExpired, AlreadyConsumedError } from './oidc-adapter.ts';
export type { OidcTables, OidcModelsTable } from './tables.ts';
export { createRedisAdapter, REDIS_MODELS, StoreUnavailableError } from './redis-adapter.ts';
export { createStorageAdapter } from './storage.ts';
export type { StorageOptions } from './storage.ts';
