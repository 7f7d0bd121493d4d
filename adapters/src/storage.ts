import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { Adapter } from 'oidc-provider';
import { createOidcAdapter, type ValueCipher } from './oidc-adapter.ts';
import { createRedisAdapter, REDIS_MODELS } from './redis-adapter.ts';
import type { OidcTables } from './tables.ts';

/**
 * A rotated refresh token's answer, kept sealed for the reuse grace period so that a replay of that
 * token gets the same tokens again; stored under a hash of the rotated token (idp's refresh-replay.ts).
 * It stays in the database beside the refresh tokens, with or without Redis: refreshing depends on
 * one store only.
 */
export const REFRESH_REPLAY_MODEL = 'RefreshTokenReplay';

export interface StorageOptions {
  db: Kysely<OidcTables>;
  /** With Redis, the hot models (REDIS_MODELS) live there; everything else stays in the database. */
  redis?: { client: Redis; prefix: string } | undefined;
  /** Seals client secrets at rest; see createOidcAdapter. */
  secrets?: ValueCipher | undefined;
}

/** The one adapter the provider is given: each model goes to Redis or to the database by configuration. */
export function createStorageAdapter(options: StorageOptions): new (name: string) => Adapter {
  const Database = createOidcAdapter(options.db, { secrets: options.secrets });
  const Hot = options.redis ? createRedisAdapter(options.redis.client, options.redis.prefix) : undefined;
  function StorageAdapter(name: string): Adapter {
    return Hot && REDIS_MODELS.has(name) ? new Hot(name) : new Database(name);
  }
  return StorageAdapter as unknown as new (name: string) => Adapter;
}
