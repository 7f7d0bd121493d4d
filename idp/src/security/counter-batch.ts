import type { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import type { RateLimitTables } from './database-counters.ts';

/** One counter of a batch: its key (as the limit's own counters name it), its limit and its window. */
export interface BatchEntry {
  key: string;
  points: number;
  seconds: number;
}

/** The first counter of a batch that was over its limit, and when its window ends. */
export interface BatchRefusal {
  index: number;
  msBeforeNext: number;
}

/**
 * Several limits' counters changed in one round trip to their store: what a request to the token
 * endpoint needs (three counters taken before the credentials are checked, two cleared after),
 * which one counter at a time would make five round trips. The keys are those of the limits' own
 * counters (rate-limiter-flexible's layout in Redis, `rate_limits` rows in the database), so either
 * reads what the other wrote.
 */
export interface CounterBatch {
  /**
   * Takes a point from each counter. When one is over its limit, the points taken from the others
   * are given back (the refused counter keeps its own, as a single counter does) and the refusal says which.
   */
  spend(entries: readonly BatchEntry[]): Promise<BatchRefusal | undefined>;
  /**
   * For a request already known to be authenticated: refused (the first check at its limit) if any
   * `checks` counter has no point left, as a request that takes a point would be, or if `budget` is
   * over its limit once a point is taken from it; otherwise the `checks` counters are cleared.
   */
  proven(checks: readonly BatchEntry[], budget: BatchEntry): Promise<BatchRefusal | undefined>;
  /** Gives back a point to each counter (never below zero). */
  giveBack(keys: readonly string[]): Promise<void>;
  /** Forgets the counters. */
  clear(keys: readonly string[]): Promise<void>;
}

/** In one script, so no other request sees a half-taken batch. KEYS: the counters; ARGV: points, ms per key. */
const SPEND_SCRIPT = `
local refused = 0
for i, key in ipairs(KEYS) do
  local ms = tonumber(ARGV[2 * i])
  redis.call('set', key, 0, 'PX', ms, 'NX')
  local count = redis.call('incrby', key, 1)
  if redis.call('pttl', key) == -1 then redis.call('pexpire', key, ms) end
  if refused == 0 and count > tonumber(ARGV[2 * i - 1]) then refused = i end
end
if refused == 0 then return {0, 0} end
for i, key in ipairs(KEYS) do
  if i ~= refused and tonumber(redis.call('get', key) or '0') > 0 then redis.call('decrby', key, 1) end
end
return {refused, redis.call('pttl', KEYS[refused])}
`;

/** KEYS: the checks, then the budget; ARGV: the number of checks, their points, the budget's points and ms. */
const PROVEN_SCRIPT = `
local n = tonumber(ARGV[1])
for i = 1, n do
  if tonumber(redis.call('get', KEYS[i]) or '0') >= tonumber(ARGV[1 + i]) then return {i, redis.call('pttl', KEYS[i])} end
end
local budget = KEYS[n + 1]
local ms = tonumber(ARGV[n + 3])
redis.call('set', budget, 0, 'PX', ms, 'NX')
local count = redis.call('incrby', budget, 1)
if redis.call('pttl', budget) == -1 then redis.call('pexpire', budget, ms) end
if count > tonumber(ARGV[n + 2]) then return {n + 1, redis.call('pttl', budget)} end
for i = 1, n do redis.call('del', KEYS[i]) end
return {0, 0}
`;

const GIVE_BACK_SCRIPT = `
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('get', key) or '0') > 0 then redis.call('decrby', key, 1) end
end
return 0
`;

type BatchRedis = Redis & {
  jobswipeSpendBatch(count: number, ...keysAndArgs: Array<string | number>): Promise<[number, number]>;
  jobswipeGiveBackBatch(count: number, ...keys: string[]): Promise<number>;
  jobswipeProvenBatch(count: number, ...keysAndArgs: Array<string | number>): Promise<[number, number]>;
};

/** The batch over Redis; `prefix` (REDIS_KEY_PREFIX) goes before every key, as for the limits' own Redis counters. */
export function redisCounterBatch(client: Redis, prefix: string): CounterBatch {
  const redis = client as BatchRedis;
  const prefixed = (keys: readonly string[]) => keys.map((key) => prefix + key);
  if (typeof redis.jobswipeSpendBatch !== 'function') {
    redis.defineCommand('jobswipeSpendBatch', { lua: SPEND_SCRIPT });
    redis.defineCommand('jobswipeGiveBackBatch', { lua: GIVE_BACK_SCRIPT });
    redis.defineCommand('jobswipeProvenBatch', { lua: PROVEN_SCRIPT });
  }
  const ready = () => {
    // Fail at once rather than queue while Redis is away (the caller decides what to do then).
    if (redis.status !== 'ready') throw new Error(`Redis is not ready (${redis.status})`);
  };
  return {
    async spend(entries) {
      ready();
      const args = entries.flatMap((entry) => [entry.points, entry.seconds * 1000]);
      const [refused, pttl] = await redis.jobswipeSpendBatch(entries.length, ...prefixed(entries.map((entry) => entry.key)), ...args);
      return refused === 0 ? undefined : { index: refused - 1, msBeforeNext: Math.max(pttl, 0) };
    },
    async proven(checks, budget) {
      ready();
      const keys = prefixed([...checks.map((check) => check.key), budget.key]);
      const args = [checks.length, ...checks.map((check) => check.points), budget.points, budget.seconds * 1000];
      const [refused, pttl] = await redis.jobswipeProvenBatch(keys.length, ...keys, ...args);
      return refused === 0 ? undefined : { index: refused - 1, msBeforeNext: Math.max(pttl, 0) };
    },
    async giveBack(keys) {
      ready();
      if (keys.length > 0) await redis.jobswipeGiveBackBatch(keys.length, ...prefixed(keys));
    },
    async clear(keys) {
      ready();
      if (keys.length > 0) await redis.del(...prefixed(keys));
    },
  };
}

/** The batch over the `rate_limits` table: one statement each, as DatabaseCounters counts one key. */
export function databaseCounterBatch(db: Kysely<RateLimitTables>): CounterBatch {
  return {
    async spend(entries) {
      const now = Date.now();
      const rows = await db
        .insertInto('rate_limits')
        .values(entries.map((entry) => ({ key: entry.key, points: 1, expire: now + entry.seconds * 1000 })))
        .onConflict((conflict) =>
          conflict.column('key').doUpdateSet({
            points: sql`CASE WHEN rate_limits.expire <= ${now} THEN 1 ELSE GREATEST(rate_limits.points + 1, 0) END`,
            expire: sql`CASE WHEN rate_limits.expire <= ${now} THEN excluded.expire ELSE rate_limits.expire END`,
          }),
        )
        .returning(['key', 'points', 'expire'])
        .execute();
      const byKey = new Map(rows.map((row) => [row.key, row]));
      const index = entries.findIndex((entry) => Number(byKey.get(entry.key)?.points ?? 0) > entry.points);
      if (index === -1) return undefined;
      await this.giveBack(entries.filter((_, other) => other !== index).map((entry) => entry.key));
      const expire = byKey.get(entries[index]!.key)?.expire;
      return { index, msBeforeNext: expire === null || expire === undefined ? 0 : Math.max(Number(expire) - now, 0) };
    },
    async proven(checks, budget) {
      const now = Date.now();
      const checked = checks.length === 0 ? sql`false` : sql.join(checks.map((check) => sql`(key = ${check.key} AND points >= ${check.points})`), sql` OR `);
      const checkKeys = checks.map((check) => check.key);
      // One statement: the checks, the budget's point (only when no check refuses) and the clearing.
      const { rows } = await sql<{ blocked_key: string | null; blocked_expire: string | number | null; budget_points: string | number | null; budget_expire: string | number | null }>`
        WITH blocked AS (
          SELECT key, expire FROM rate_limits WHERE expire > ${now} AND (${checked}) LIMIT 1
        ), budget AS (
          INSERT INTO rate_limits (key, points, expire)
          SELECT ${budget.key}, 1, ${now + budget.seconds * 1000}::bigint WHERE NOT EXISTS (SELECT 1 FROM blocked)
          ON CONFLICT (key) DO UPDATE SET
            points = CASE WHEN rate_limits.expire <= ${now} THEN 1 ELSE GREATEST(rate_limits.points + 1, 0) END,
            expire = CASE WHEN rate_limits.expire <= ${now} THEN excluded.expire ELSE rate_limits.expire END
          RETURNING points, expire
        ), cleared AS (
          DELETE FROM rate_limits
          WHERE key IN (${sql.join(checkKeys.length > 0 ? checkKeys : [''])})
            AND EXISTS (SELECT 1 FROM budget WHERE points <= ${budget.points})
        )
        SELECT (SELECT key FROM blocked) AS blocked_key, (SELECT expire FROM blocked) AS blocked_expire,
               (SELECT points FROM budget) AS budget_points, (SELECT expire FROM budget) AS budget_expire
      `.execute(db);
      const row = rows[0];
      const left = (expire: string | number | null | undefined) => (expire === null || expire === undefined ? 0 : Math.max(Number(expire) - now, 0));
      if (row?.blocked_key) return { index: checks.findIndex((check) => check.key === row.blocked_key), msBeforeNext: left(row.blocked_expire) };
      if (Number(row?.budget_points ?? 0) > budget.points) return { index: checks.length, msBeforeNext: left(row?.budget_expire) };
      return undefined;
    },
    async giveBack(keys) {
      if (keys.length === 0) return;
      await db
        .updateTable('rate_limits')
        .set({ points: sql`GREATEST(points - 1, 0)` })
        .where('key', 'in', [...keys])
        .where('expire', '>', Date.now())
        .execute();
    },
    async clear(keys) {
      if (keys.length === 0) return;
      await db.deleteFrom('rate_limits').where('key', 'in', [...keys]).execute();
    },
  };
}

/** Redis, and the database while Redis cannot answer (the limits that count in the database meanwhile). */
export function insuredCounterBatch(primary: CounterBatch, insurance: CounterBatch): CounterBatch {
  const either = <A extends unknown[], R>(operation: (batch: CounterBatch, ...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await operation(primary, ...args);
      } catch {
        return operation(insurance, ...args);
      }
    };
  return {
    spend: either((batch, entries: readonly BatchEntry[]) => batch.spend(entries)),
    proven: either((batch, checks: readonly BatchEntry[], budget: BatchEntry) => batch.proven(checks, budget)),
    giveBack: either((batch, keys: readonly string[]) => batch.giveBack(keys)),
    clear: either((batch, keys: readonly string[]) => batch.clear(keys)),
  };
}
