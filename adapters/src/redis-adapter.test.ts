import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { errors, type Adapter } from 'oidc-provider';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, type TestStore } from '../../test/support/stores.ts';
import { scanKeys, TEST_REDIS_URL } from '../../test/support/redis.ts';
import { describeAdapterContract } from '../test/adapter-contract.ts';
import { newId, payloadFor } from '../test/adapter-contract.fixtures.ts';
import { CREDENTIAL_MODELS, storedIdOf } from './credential-ids.ts';
import { openDatabase, type Database } from './database.ts';
import { AlreadyConsumedError } from './oidc-adapter.ts';
import { createRedisAdapter, REDIS_MODELS, StoreUnavailableError } from './redis-adapter.ts';
import { createStorageAdapter, REDIS_PREFERRED_MODELS } from './storage.ts';
import type { OidcTables } from './tables.ts';


const MODELS = [...REDIS_MODELS];


/** Time for a key upserted with expiresIn = 1 to be past its expiry. */
const PAST_ONE_SECOND_EXPIRY_MS = 1_200;




/** Glob-escapes an id for SCAN MATCH (uuids and our labels hold none, but be safe). */
const glob = (text: string) => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);

const prefix = `jobswipe-test:${randomUUID()}:`;
let redis: Redis;
let RedisAdapter: new (name: string) => Adapter;
const adapter = (model: string): Adapter => new RedisAdapter(model);

/** Every key under the run's prefix that mentions the id (the model key, its lookups, its grant index). */
const keysMentioning = (id: string) => scanKeys(redis, `${glob(prefix)}*${glob(id)}*`);

/** The key a model's object is stored under: a credential model's under the hash of its id. */
const modelKey = (model: string, id: string) => `${prefix}${model}:${storedIdOf(model, id)}`;

/** Set when Redis is not reachable: every test then fails with it (a failing beforeAll would report them skipped). */
let unreachable: Error | undefined;

beforeAll(async () => {
  redis = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1, connectTimeout: 3_000, lazyConnect: true });
  redis.on('error', () => {});
  RedisAdapter = createRedisAdapter(redis, prefix);
  try {
    await redis.connect();
    if ((await redis.ping()) !== 'PONG') throw new Error('PING did not answer PONG');
  } catch (error) {
    unreachable = new Error(`Redis is required for the tests and is not reachable at ${TEST_REDIS_URL}: ${(error as Error).message}`);
  }
});

beforeEach(() => {
  if (unreachable) throw unreachable;
});

afterAll(async () => {
  if (!redis) return;
  try {
    if (redis.status === 'ready') {
      const keys = await scanKeys(redis, `${glob(prefix)}*`);
      for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
    }
  } finally {
    redis.disconnect();
  }
});

describeAdapterContract('redis adapter contract', {
  models: MODELS,
  adapter,
  storage: {
    async afterReplace(model, id) {
      const ttl = await redis.ttl(modelKey(model, id));
      expect(ttl).toBeGreaterThan(3590);
      expect(ttl).toBeLessThanOrEqual(3600);
      if (!CREDENTIAL_MODELS.has(model)) return;
      // Neither a key nor a stored payload holds the credential itself.
      expect(await scanKeys(redis, `${glob(prefix)}*:${glob(id)}`)).toStrictEqual([]);
      // The fixture's grantId embeds the id; the value itself, as a JSON string, must not be there.
      expect(await redis.hget(modelKey(model, id), 'payload')).not.toContain(JSON.stringify(id));
    },
    async afterDestroy(model, id) {
      expect(await redis.exists(modelKey(model, id))).toBe(0);
    },
    async afterConsumeUnknown(model, id) {
      expect(await keysMentioning(id)).toStrictEqual([]);
      expect(await redis.exists(modelKey(model, id))).toBe(0);
    },
    async afterRevoke({ model, grantId, revoked }) {
      expect(await redis.exists(...revoked.map((id) => modelKey(model, id)))).toBe(0);
      expect(await redis.exists(`${prefix}${model}:grant:${grantId}`)).toBe(0);
    },
    async afterNoExpiryUpserts(model, ids) {
      for (const id of ids) expect(await redis.ttl(modelKey(model, id)), id).toBe(-1);
    },
    async afterExpiredUpsert(_model, id) {
      // Nothing is stored: no key, no lookup.
      expect(await keysMentioning(id)).toStrictEqual([]);
    },
  },
});

describe('redis adapter', () => {
  it('saves and consumes again after Redis forgot its scripts (a restart keeps none), one command or many at once', async () => {
    for (const enableAutoPipelining of [false, true]) {
      const client = new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: 1, enableAutoPipelining });
      try {
        const Adapter = createRedisAdapter(client, prefix);
        const first = newId('before-flush');
        await new Adapter('AuthorizationCode').upsert(first, payloadFor('AuthorizationCode', first), 600);
        await redis.script('FLUSH');
        const ids = Array.from({ length: 5 }, (_, i) => newId(`after-flush-${i}`));
        await Promise.all(ids.map((id) => new Adapter('AuthorizationCode').upsert(id, payloadFor('AuthorizationCode', id, { grantId: 'flush-grant' }), 600)));
        for (const id of ids) expect((await new Adapter('AuthorizationCode').find(id))?.jti).toBe(id);
        await redis.script('FLUSH');
        await new Adapter('AuthorizationCode').consume(first);
        await expect(new Adapter('AuthorizationCode').consume(first)).rejects.toBeInstanceOf(AlreadyConsumedError);
        expect(await redis.ttl(`${prefix}AuthorizationCode:grant:flush-grant`)).toBeGreaterThan(590);
      } finally {
        client.disconnect();
      }
    }
  });

  describe('consume', () => {
    it('of 20 concurrent consumes of one AuthorizationCode exactly one wins', async () => {
      const id = newId('race');
      const grantId = newId('race-grant');
      await adapter('AuthorizationCode').upsert(id, payloadFor('AuthorizationCode', id, { grantId }), 600);

      // Separate connections as well as separate adapter instances, as separate processes would have.
      const clients = Array.from({ length: 4 }, () => redis.duplicate());
      try {
        const adapters = clients.map((client) => createRedisAdapter(client, prefix));
        const results = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => new adapters[i % adapters.length]!('AuthorizationCode').consume(id)),
        );
        const fulfilled = results.filter((result) => result.status === 'fulfilled');
        const rejected = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
        expect(fulfilled).toHaveLength(1);
        expect(rejected).toHaveLength(19);
        for (const { reason } of rejected) {
          expect(reason).toBeInstanceOf(AlreadyConsumedError);
          expect((reason as AlreadyConsumedError).grantId).toBe(grantId);
        }
      } finally {
        for (const client of clients) client.disconnect();
      }
      expect(typeof (await adapter('AuthorizationCode').find(id))?.consumed).toBe('number');
    });
  });

  describe('revokeByGrantId', () => {
    it('still finds a long-lived key after a short-lived key of the same grant expired (index TTL)', async () => {
      const grant = newId('grant');
      const [long, short] = [newId('ac-long'), newId('ac-short')];
      const indexKey = `${prefix}AuthorizationCode:grant:${grant}`;
      await adapter('AuthorizationCode').upsert(long, payloadFor('AuthorizationCode', long, { grantId: grant }), 3600);
      await adapter('AuthorizationCode').upsert(short, payloadFor('AuthorizationCode', short, { grantId: grant }), 2);
      expect(await redis.ttl(indexKey)).toBeGreaterThanOrEqual(3590);

      await sleep(2_200);
      expect(await adapter('AuthorizationCode').find(short)).toBeUndefined();
      expect(await adapter('AuthorizationCode').find(long)).toBeDefined();
      expect(await redis.ttl(indexKey)).toBeGreaterThanOrEqual(3590);

      await adapter('AuthorizationCode').revokeByGrantId(grant);
      expect(await adapter('AuthorizationCode').find(long)).toBeUndefined();
      expect(await redis.exists(modelKey('AuthorizationCode', long), indexKey)).toBe(0);
    });
  });

  describe('expiry', () => {
    it('keys with expiresIn = 1 are returned at once and gone after ~1.2 s, lookups included', async () => {
      const ids = Object.fromEntries(MODELS.map((model) => [model, newId(`short-${model}`)]));
      for (const model of MODELS) await adapter(model).upsert(ids[model]!, payloadFor(model, ids[model]!), 1);
      for (const model of MODELS) {
        expect((await adapter(model).find(ids[model]!))?.jti, model).toBe(ids[model]);
        const pttl = await redis.pttl(modelKey(model, ids[model]!));
        expect(pttl, model).toBeGreaterThan(0);
        expect(pttl, model).toBeLessThanOrEqual(1_000);
      }
      const session = ids['Session']!;
      const device = ids['DeviceCode']!;
      expect((await adapter('Session').findByUid(`uid-of-${session}`))?.jti).toBe(session);
      expect((await adapter('DeviceCode').findByUserCode(`UC-${device}`))?.jti).toBe(device);

      await sleep(PAST_ONE_SECOND_EXPIRY_MS);

      for (const model of MODELS) expect(await adapter(model).find(ids[model]!), model).toBeUndefined();
      expect(await adapter('Session').findByUid(`uid-of-${session}`)).toBeUndefined();
      expect(await adapter('DeviceCode').findByUserCode(`UC-${device}`)).toBeUndefined();
      for (const id of Object.values(ids)) expect(await keysMentioning(id), id).toStrictEqual([]);
      for (const model of MODELS) expect(await redis.exists(modelKey(model, ids[model]!)), model).toBe(0);
    });
  });

  describe('an unreachable Redis', () => {
    it('makes find and upsert reject with StoreUnavailableError (503 temporarily_unavailable) within 5 s', async () => {
      const down = new Redis({
        host: '127.0.0.1',
        port: 1,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        lazyConnect: true,
        connectTimeout: 1_000,
        retryStrategy: () => null,
      });
      down.on('error', () => {});
      try {
        const Down = createRedisAdapter(down, prefix);
        const started = Date.now();
        const id = newId('down');
        for (const operation of [
          () => new Down('Session').find(id),
          () => new Down('Session').upsert(id, payloadFor('Session', id), 600),
          () => new Down('AuthorizationCode').consume(id),
          () => new Down('Session').findByUid(id),
        ]) {
          const error: unknown = await operation().then(
            () => undefined,
            (rejection: unknown) => rejection,
          );
          expect(error).toBeInstanceOf(StoreUnavailableError);
          expect(error).toBeInstanceOf(errors.OIDCProviderError);
          expect((error as StoreUnavailableError).status).toBe(503);
          expect((error as StoreUnavailableError).statusCode).toBe(503);
          expect((error as StoreUnavailableError).error).toBe('temporarily_unavailable');
        }
        expect(Date.now() - started).toBeLessThan(5_000);
      } finally {
        down.disconnect();
      }
    });
  });
});

describe('createStorageAdapter with Redis', () => {
  let store: TestStore | undefined;
  let database: Database<OidcTables> | undefined;
  const storagePrefix = `${prefix}storage:`;

  beforeAll(async () => {
    store = await createTestStore('postgres');
    if (store.kind !== 'postgres') throw new Error('expected a postgres store');
    database = await openDatabase<OidcTables>({ kind: 'postgres', url: store.url, poolMax: 4 });
    await migrateToLatest(database.db);
  });

  afterAll(async () => {
    try {
      await database?.close();
    } finally {
      await store?.drop();
    }
  });

  it('sends Session to Redis and Grant to the database', async () => {
    if (!database) throw new Error('database not open');
    const db = database.db;
    const Storage = createStorageAdapter({ db, redis: { client: redis, prefix: storagePrefix } });
    const rowsFor = (id: string) => db.selectFrom('oidc_models').select(['model', 'id']).where('id', '=', id).execute();

    const session = newId('sess');
    await new Storage('Session').upsert(session, payloadFor('Session', session), 600);
    expect((await new Storage('Session').find(session))?.jti).toBe(session);
    expect(await scanKeys(redis, `${glob(storagePrefix)}Session:${glob(session)}`)).toHaveLength(1);
    expect(await rowsFor(session)).toHaveLength(0);

    const grant = newId('grant');
    await new Storage('Grant').upsert(grant, { jti: grant, kind: 'Grant', accountId: 'account-1' }, 600);
    expect((await new Storage('Grant').find(grant))?.jti).toBe(grant);
    expect(await rowsFor(grant)).toStrictEqual([{ model: 'Grant', id: grant }]);
    expect(await scanKeys(redis, `${glob(storagePrefix)}*${glob(grant)}*`)).toStrictEqual([]);
  });

  it('keeps access tokens in Redis while it answers and in the database while it does not, and finds and revokes them in both', async () => {
    if (!database) throw new Error('database not open');
    const db = database.db;
    const Storage = createStorageAdapter({ db, redis: { client: redis, prefix: storagePrefix } });
    // A Redis that is not there: nothing listens on the port, and commands fail at once.
    const away = new Redis({ port: 1, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    away.on('error', () => {});
    const Degraded = createStorageAdapter({ db, redis: { client: away, prefix: storagePrefix } });
    const rowsFor = (model: string, id: string) => db.selectFrom('oidc_models').select('model').where('model', '=', model).where('id', '=', storedIdOf(model, id)).execute();
    const grantId = newId('preferred-grant');
    try {
      for (const model of REDIS_PREFERRED_MODELS) {
        const hot = newId(`hot-${model}`);
        await new Storage(model).upsert(hot, payloadFor('AccessToken', hot, { grantId }), 600);
        expect(await rowsFor(model, hot)).toEqual([]);
        expect(await scanKeys(redis, modelKey(model, hot).replace(prefix, `${glob(prefix)}storage:`))).toHaveLength(1);

        const cold = newId(`cold-${model}`);
        await new Degraded(model).upsert(cold, payloadFor('AccessToken', cold, { grantId }), 600);
        expect(await rowsFor(model, cold)).toHaveLength(1);
        // Written during the outage, found once Redis is back; and found while it is away.
        expect((await new Storage(model).find(cold))?.grantId).toBe(grantId);
        expect((await new Degraded(model).find(cold))?.grantId).toBe(grantId);
        expect((await new Storage(model).find(hot))?.grantId).toBe(grantId);
        expect(await new Degraded(model).find(hot)).toBeUndefined();

        // A removal reaches both stores, and is refused (not reported done) while Redis is away.
        await expect(new Degraded(model).revokeByGrantId(grantId)).rejects.toBeInstanceOf(StoreUnavailableError);
        await new Storage(model).revokeByGrantId(grantId);
        expect(await new Storage(model).find(hot)).toBeUndefined();
        expect(await new Storage(model).find(cold)).toBeUndefined();
        expect(await rowsFor(model, cold)).toEqual([]);
      }
    } finally {
      away.disconnect();
    }
  });

  it('looks in the database for a token Redis does not have only while the database holds any of its model', async () => {
    if (!database) throw new Error('database not open');
    await database.db.deleteFrom('oidc_models').where('model', 'in', [...REDIS_PREFERRED_MODELS]).execute();
    // This handle is one process; database.db, with presence of its own, is another.
    let lookups = 0;
    const db = database.db.withPlugin({
      transformQuery(args) {
        if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node).includes('"oidc_models"')) lookups += 1;
        return args.node;
      },
      transformResult: async (args) => args.result,
    });
    // The adapter runs its lookups as compiled statements: count those too.
    const counted = new Proxy(db, {
      get(target, property) {
        if (property === 'executeQuery') {
          return (query: { sql: string }) => {
            if (/^\s*select\s+payload\b/i.test(query.sql)) lookups += 1;
            return target.executeQuery(query as never);
          };
        }
        const value: unknown = Reflect.get(target, property, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const Storage = createStorageAdapter({ db: counted, redis: { client: redis, prefix: storagePrefix } });
    const away = new Redis({ port: 1, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    away.on('error', () => {});
    const OtherProcessDegraded = createStorageAdapter({ db: database.db, redis: { client: away, prefix: storagePrefix } });
    try {
      for (const model of ['AccessToken', 'ClientCredentials']) expect(await new Storage(model).find(newId('unknown'))).toBeUndefined();
      const before = lookups;
      for (const model of ['AccessToken', 'ClientCredentials']) expect(await new Storage(model).find(newId('unknown'))).toBeUndefined();
      expect(lookups).toBe(before);

      // Another process writes one during an outage: seen within a second, then looked up in the database.
      const cold = newId('cold-elsewhere');
      await new OtherProcessDegraded('ClientCredentials').upsert(cold, payloadFor('AccessToken', cold), 600);
      const deadline = Date.now() + 3_000;
      while (!(await new Storage('ClientCredentials').find(cold))) {
        if (Date.now() > deadline) throw new Error('the row written by another process was not found');
        await sleep(100);
      }
      const looked = lookups;
      expect(await new Storage('ClientCredentials').find(newId('unknown'))).toBeUndefined();
      expect(lookups).toBe(looked + 1);

      // Written through this process while Redis is away: found at once once it is back (no second to wait).
      const Degraded = createStorageAdapter({ db: counted, redis: { client: away, prefix: storagePrefix } });
      const mine = newId('cold-here');
      await new Degraded('AccessToken').upsert(mine, payloadFor('AccessToken', mine), 600);
      expect((await new Storage('AccessToken').find(mine))?.jti).toBe(mine);
    } finally {
      away.disconnect();
      await database.db.deleteFrom('oidc_models').where('model', 'in', [...REDIS_PREFERRED_MODELS]).execute();
    }
  });
});
