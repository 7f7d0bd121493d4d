import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { coldPresenceOf, type ColdPresence } from './cold-presence.ts';
import { createOidcAdapter, type ValueCipher } from './oidc-adapter.ts';
import { createRedisAdapter, REDIS_MODELS, REFRESH_REPLAY_MODEL } from './redis-adapter.ts';
import { isStoreUnavailable } from './store-errors.ts';
import type { OidcTables } from './tables.ts';

export { REFRESH_REPLAY_MODEL } from './redis-adapter.ts';

/**
 * Models written on every token request that must not make refreshing depend on Redis: kept in
 * Redis while it answers, in the database while it does not, and looked up in Redis first.
 * - Opaque access tokens (AccessToken, ClientCredentials; 15 minutes at most).
 * - A rotation's kept answer (REFRESH_REPLAY_MODEL; the reuse grace period, seconds).
 * A token Redis loses (a restart: it keeps nothing on disk) is gone: the client gets 401 at userinfo
 * or `active: false` at introspection, and refreshes.
 */
export const REDIS_PREFERRED_MODELS = new Set(['AccessToken', 'ClientCredentials', REFRESH_REPLAY_MODEL]);

export interface StorageOptions {
  db: Kysely<OidcTables>;
  /** With Redis, the hot models (REDIS_MODELS, REDIS_PREFERRED_MODELS) live there; everything else stays in the database. */
  redis?: { client: Redis; prefix: string } | undefined;
  /** Seals client secrets at rest; see createOidcAdapter. */
  secrets?: ValueCipher | undefined;
  /** Told the duration of every Redis operation (failed ones too), in seconds: the server's store timing metric. */
  onRedisOperation?: ((seconds: number) => void) | undefined;
}

const ADAPTER_METHODS = ['upsert', 'find', 'findByUid', 'findByUserCode', 'consume', 'destroy', 'revokeByGrantId'] as const;

/** The adapter with each operation timed. */
function timed(adapter: Adapter, observe: (seconds: number) => void): Adapter {
  const wrapped = { ...adapter } as Record<(typeof ADAPTER_METHODS)[number], (...args: unknown[]) => Promise<unknown>>;
  for (const method of ADAPTER_METHODS) {
    const operation = (adapter[method] as (...args: unknown[]) => Promise<unknown>).bind(adapter);
    wrapped[method] = async (...args) => {
      const started = performance.now();
      try {
        return await operation(...args);
      } finally {
        observe((performance.now() - started) / 1000);
      }
    };
  }
  return wrapped as unknown as Adapter;
}

/** Runs `first`; when its store is unavailable (not for any other error), runs `fallback` instead. */
async function orElse<T>(first: () => Promise<T>, fallback: () => Promise<T>): Promise<T> {
  try {
    return await first();
  } catch (error) {
    if (!isStoreUnavailable(error)) throw error;
    return fallback();
  }
}

/**
 * Redis first, the database when Redis is unavailable. Finds look in Redis, then in the database
 * (what was written there during an outage) when it may hold any of the model (cold-presence.ts), and
 * always when Redis does not answer; removals go to both, and fail if either fails, so a revocation is
 * never reported done while a copy lives on.
 */
function preferring(name: string, hot: Adapter, cold: Adapter, presence: ColdPresence): Adapter {
  const find = (method: 'find' | 'findByUid' | 'findByUserCode') => async (value: string): Promise<AdapterPayload | undefined> => {
    let answered = true;
    const found = await orElse(async () => (await hot[method](value)) ?? undefined, async () => {
      answered = false;
      return undefined;
    });
    if (found) return found;
    if (answered && !(await presence.mayHold(name))) return undefined;
    return (await cold[method](value)) ?? undefined;
  };
  return {
    upsert: (id, payload, expiresIn) =>
      orElse(
        () => hot.upsert(id, payload, expiresIn),
        async () => {
          presence.wrote(name);
          await cold.upsert(id, payload, expiresIn);
        },
      ),
    find: find('find'),
    findByUid: find('findByUid'),
    findByUserCode: find('findByUserCode'),
    consume: (id) => orElse(() => hot.consume(id), () => cold.consume(id)),
    async destroy(id) {
      await Promise.all([hot.destroy(id), cold.destroy(id)]);
    },
    async revokeByGrantId(grantId) {
      await Promise.all([hot.revokeByGrantId(grantId), cold.revokeByGrantId(grantId)]);
    },
  };
}

/** The one adapter the provider is given: each model goes to Redis or to the database by configuration. */
export function createStorageAdapter(options: StorageOptions): new (name: string) => Adapter {
  const Database = createOidcAdapter(options.db, { secrets: options.secrets });
  const Hot = options.redis ? createRedisAdapter(options.redis.client, options.redis.prefix) : undefined;
  const { onRedisOperation } = options;
  const hot = (name: string) => (onRedisOperation ? timed(new Hot!(name), onRedisOperation) : new Hot!(name));
  function StorageAdapter(name: string): Adapter {
    if (!Hot) return new Database(name);
    if (REDIS_MODELS.has(name)) return hot(name);
    if (REDIS_PREFERRED_MODELS.has(name)) return preferring(name, hot(name), new Database(name), coldPresenceOf(options.db, REDIS_PREFERRED_MODELS));
    return new Database(name);
  }
  return StorageAdapter as unknown as new (name: string) => Adapter;
}
