import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql, type Kysely } from 'kysely';
import { RateLimiterRedis } from 'rate-limiter-flexible';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '@jobswipe/adapters';
import { migrateToLatest } from '@jobswipe/migrations';
import { TEST_REDIS_URL } from '../../../test/support/redis.ts';
import { createTestStore, type TestStore } from '../../../test/support/stores.ts';
import { databaseCounterBatch, insuredCounterBatch, redisCounterBatch, type CounterBatch } from './counter-batch.ts';
import { DatabaseCounters, type RateLimitTables } from './database-counters.ts';

const entries = (prefix: string) => [
  { key: `${prefix}:a`, points: 3, seconds: 60 },
  { key: `${prefix}:b`, points: 5, seconds: 60 },
  { key: `${prefix}:c`, points: 100, seconds: 60 },
];

let store: TestStore;
let database: Database<RateLimitTables>;
let redis: Redis;
const prefix = `jobswipe-test:${randomUUID()}:`;
let statements = 0;
let db: Kysely<RateLimitTables>;

beforeAll(async () => {
  store = await createTestStore('postgres');
  database = await openDatabase<RateLimitTables>({ kind: 'postgres', url: (store as { url: string }).url, poolMax: 4 }, { prepare: async (owner) => void (await migrateToLatest(owner)) });
  db = database.db.withPlugin({
    transformQuery(args) {
      statements += 1;
      return args.node;
    },
    async transformResult(args) {
      return args.result;
    },
  });
  redis = new Redis(TEST_REDIS_URL);
  await redis.ping();
});
afterAll(async () => {
  await redis?.quit();
  await database?.close();
  await store?.drop();
});

/** The counts as a single counter of the limits would read them. */
async function redisCount(key: string): Promise<number> {
  return Number((await redis.get(prefix + key)) ?? 0);
}
async function databaseCount(key: string): Promise<number> {
  const row = await database.db.selectFrom('rate_limits').select('points').where('key', '=', key).executeTakeFirst();
  return Number(row?.points ?? 0);
}

/** Commands sent to Redis while `run` runs. */
async function commandsDuring(run: () => Promise<unknown>): Promise<string[]> {
  const sent: string[] = [];
  const original = redis.sendCommand.bind(redis);
  redis.sendCommand = ((command: { name: string }) => {
    sent.push(command.name);
    return original(command as never);
  }) as typeof redis.sendCommand;
  try {
    await run();
  } finally {
    redis.sendCommand = original;
  }
  return sent;
}

describe.each([
  ['Redis', () => redisCounterBatch(redis, prefix), redisCount],
  ['the database', () => databaseCounterBatch(db), databaseCount],
] as const)('a counter batch in %s', (_store, make, count) => {
  let batch: CounterBatch;
  beforeAll(() => {
    batch = make();
  });

  it('takes a point from every counter, and refuses at the first counter over its limit, giving the others back', async () => {
    const keys = entries(randomUUID());
    for (let i = 0; i < 3; i += 1) expect(await batch.spend(keys)).toBeUndefined();
    expect(await Promise.all(keys.map(({ key }) => count(key)))).toEqual([3, 3, 3]);
    const refused = await batch.spend(keys);
    expect(refused).toMatchObject({ index: 0 });
    expect(refused!.msBeforeNext).toBeGreaterThan(55_000);
    expect(refused!.msBeforeNext).toBeLessThanOrEqual(60_000);
    // The refused counter keeps its point, as a single counter does; the others got theirs back.
    expect(await Promise.all(keys.map(({ key }) => count(key)))).toEqual([4, 3, 3]);
  });

  it('gives points back, never below zero, and clears', async () => {
    const keys = entries(randomUUID());
    await batch.spend(keys);
    await batch.giveBack(keys.map(({ key }) => key));
    await batch.giveBack(keys.map(({ key }) => key));
    expect(await Promise.all(keys.map(({ key }) => count(key)))).toEqual([0, 0, 0]);
    await batch.spend(keys);
    await batch.clear([keys[0]!.key, keys[1]!.key]);
    expect(await Promise.all(keys.map(({ key }) => count(key)))).toEqual([0, 0, 1]);
  });

  it('never lets concurrent spends past a limit', async () => {
    const keys = [{ key: `${randomUUID()}:burst`, points: 5, seconds: 60 }];
    const results = await Promise.all(Array.from({ length: 20 }, () => batch.spend(keys)));
    expect(results.filter((refused) => refused === undefined)).toHaveLength(5);
  });
});

describe('round trips', () => {
  it('a spend of three counters is one command to Redis', async () => {
    const batch = redisCounterBatch(redis, prefix);
    const keys = entries(randomUUID());
    await batch.spend(keys); // loads the script
    expect(await commandsDuring(() => batch.spend(keys))).toEqual(['evalsha']);
    expect(await commandsDuring(() => batch.clear(keys.map(({ key }) => key)))).toEqual(['del']);
    expect(await commandsDuring(() => batch.giveBack(keys.map(({ key }) => key)))).toEqual(['evalsha']);
  });

  it('a spend of three counters is one statement in the database', async () => {
    const batch = databaseCounterBatch(db);
    const before = statements;
    await batch.spend(entries(randomUUID()));
    expect(statements - before).toBe(1);
  });
});

describe('the keys', () => {
  it('are those the single counters read and write, in Redis and in the database', async () => {
    const name = `ratelimit:probe-${randomUUID()}`;
    const single = new RateLimiterRedis({ storeClient: redis, keyPrefix: `${prefix}${name}`, points: 10, duration: 60 });
    const singleDb = new DatabaseCounters({ db: database.db, keyPrefix: name, points: 10, duration: 60 });
    await redisCounterBatch(redis, prefix).spend([{ key: `${name}:x`, points: 10, seconds: 60 }]);
    await databaseCounterBatch(database.db).spend([{ key: `${name}:x`, points: 10, seconds: 60 }]);
    expect((await single.get('x'))?.consumedPoints).toBe(1);
    expect((await singleDb.get('x'))?.consumedPoints).toBe(1);
  });
});

describe('with Redis unavailable', () => {
  it('counts in the database meanwhile', async () => {
    const down = new Redis({ port: 1, lazyConnect: true, retryStrategy: () => null });
    down.on('error', () => {});
    const batch = insuredCounterBatch(redisCounterBatch(down, prefix), databaseCounterBatch(database.db));
    const keys = entries(randomUUID());
    expect(await batch.spend(keys)).toBeUndefined();
    expect(await databaseCount(keys[0]!.key)).toBe(1);
    await batch.clear([keys[0]!.key]);
    expect(await databaseCount(keys[0]!.key)).toBe(0);
    expect(await sql<{ n: number }>`select 1 as n`.execute(database.db)).toBeTruthy();
    down.disconnect();
  });
});

describe.each([
  ['Redis', () => redisCounterBatch(redis, prefix), redisCount],
  ['the database', () => databaseCounterBatch(db), databaseCount],
] as const)('a proven request in %s', (_store, make, count) => {
  it('is refused while a checked counter has no point left, takes from the budget, and clears the checks', async () => {
    const batch = make();
    const id = randomUUID();
    const checks = [
      { key: `${id}:ip`, points: 3, seconds: 60 },
      { key: `${id}:client`, points: 5, seconds: 60 },
    ];
    const budget = { key: `${id}:budget`, points: 2, seconds: 60 };
    await batch.spend([checks[0]!]);
    await batch.spend([checks[0]!, checks[1]!]);
    expect(await batch.proven(checks, budget)).toBeUndefined();
    expect([await count(checks[0]!.key), await count(checks[1]!.key), await count(budget.key)]).toEqual([0, 0, 1]);

    for (let i = 0; i < 3; i += 1) await batch.spend([checks[1]!]);
    await batch.spend([checks[0]!]);
    await batch.spend([checks[0]!]);
    await batch.spend([checks[0]!]);
    const held = await batch.proven(checks, budget);
    expect(held).toMatchObject({ index: 0 });
    expect(held!.msBeforeNext).toBeGreaterThan(50_000);
    // Refused: nothing taken, nothing cleared.
    expect([await count(checks[0]!.key), await count(checks[1]!.key), await count(budget.key)]).toEqual([3, 3, 1]);

    await batch.clear([checks[0]!.key, checks[1]!.key]);
    expect(await batch.proven(checks, budget)).toBeUndefined();
    expect(await batch.proven(checks, budget)).toMatchObject({ index: 2 });
  });
});

describe('round trips of a proven request', () => {
  it('one command to Redis, one statement in the database', async () => {
    const id = randomUUID();
    const checks = [{ key: `${id}:ip`, points: 3, seconds: 60 }];
    const budget = { key: `${id}:budget`, points: 10, seconds: 60 };
    const onRedis = redisCounterBatch(redis, prefix);
    await onRedis.proven(checks, budget);
    expect(await commandsDuring(() => onRedis.proven(checks, budget))).toEqual(['evalsha']);
    const before = statements;
    await databaseCounterBatch(db).proven(checks, budget);
    expect(statements - before).toBe(1);
  });
});
