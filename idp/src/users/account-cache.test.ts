import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NoticedCache, openDatabase, type Database } from '@jobswipe/adapters';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, STORE_KINDS, storeOptionsOf, type TestStore } from '../../../test/support/stores.ts';
import { createPersonalData } from '../account/personal-data.ts';
import { accountCacheOf, createUserQueries, USER_CHANGES_CHANNEL } from './queries.ts';
import type { UserTables } from './tables.ts';

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The database handle with its reads of the users table counted (a plugin sees every statement kysely builds). */
function countingReads<DB>(target: Kysely<DB>) {
  let reads = 0;
  const db = target.withPlugin({
    transformQuery(args) {
      if (args.node.kind === 'SelectQueryNode' && JSON.stringify(args.node.from).includes('"users"')) reads += 1;
      return args.node;
    },
    transformResult: async (args) => args.result,
  });
  return { db, reads: () => reads };
}

describe('NoticedCache', () => {
  it('keeps nothing until it listens, refuses a lookup that raced with a change, and drops the oldest past its bound', () => {
    const cache = new NoticedCache<string>(2);
    cache.keep('a', 'A', cache.generation());
    expect(cache.get('a')).toBeUndefined();

    cache.listening(true);
    const before = cache.generation();
    cache.changed('a');
    cache.keep('a', 'stale', before);
    expect(cache.get('a')).toBeUndefined();

    cache.keep('a', 'A', cache.generation());
    cache.keep('b', 'B', cache.generation());
    cache.keep('a', 'A2', cache.generation());
    cache.keep('c', 'C', cache.generation());
    expect([cache.get('a'), cache.get('b'), cache.get('c')]).toEqual(['A2', undefined, 'C']);
    expect(cache.size).toBe(2);

    cache.listening(false);
    expect(cache.get('c')).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});

describe.each(STORE_KINDS)('the provider’s accounts on the %s store', (kind) => {
  let store: TestStore;
  let database: Database<UserTables>;

  beforeAll(async () => {
    store = await createTestStore(kind);
    database = await openDatabase<UserTables>(storeOptionsOf(store, 4), { prepare: async (db) => void (await migrateToLatest(db)) });
  });
  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  it('are read once while change notices arrive, and read again after any change to the row', async () => {
    const { db, reads } = countingReads(database.db);
    const users = createUserQueries(db);
    const cache = accountCacheOf(db);
    const stop = await database.listen(USER_CHANGES_CHANNEL, { message: (id) => cache.changed(id), state: (on) => cache.listening(on) });
    try {
      const user = await users.insert({ email: `kept-${kind}@example.com`, name: 'First', passwordHash: null, emailVerified: true });
      expect(await users.findAccount(user.id)).toEqual({ id: user.id, email: `kept-${kind}@example.com`, email_verified: true, name: 'First', disabled_at: null });
      const before = reads();
      for (let i = 0; i < 5; i += 1) expect(await users.findAccount(user.id)).toMatchObject({ name: 'First' });
      expect(reads()).toBe(before);
      // Shared between requests, so frozen; and no password hash is kept.
      const kept = (await users.findAccount(user.id))!;
      expect(Object.isFrozen(kept)).toBe(true);
      expect(Object.keys(kept)).not.toContain('password_hash');

      // This process's own writes are forgotten at once.
      await users.update(user.id, { name: 'Second' });
      expect(await users.findAccount(user.id)).toMatchObject({ name: 'Second' });
      await users.disable(user.id);
      expect((await users.findAccount(user.id))!.disabled_at).toBeInstanceOf(Date);

      // Written behind the queries' back (another process, or by hand): the notice makes it forget.
      await sql`update users set name = 'Third', disabled_at = null where id = ${user.id}`.execute(database.db);
      await until(async () => (await users.findAccount(user.id))?.name === 'Third', 'the renamed account');
      expect((await users.findAccount(user.id))!.disabled_at).toBeNull();

      await createPersonalData(db as never).erase(user.id);
      expect(await users.findAccount(user.id)).toBeUndefined();
    } finally {
      await stop();
      cache.listening(false);
    }
  });

  it('are read every time while no notices are received (the CLI, or the listening connection lost)', async () => {
    const { db, reads } = countingReads(database.db);
    const users = createUserQueries(db);
    const user = await users.insert({ email: `unkept-${kind}@example.com`, name: 'Any', passwordHash: null, emailVerified: false });
    const before = reads();
    await users.findAccount(user.id);
    await users.findAccount(user.id);
    expect(reads() - before).toBe(2);
    expect(accountCacheOf(db).size).toBe(0);
  });
});

describe('the provider’s accounts on Postgres', () => {
  let store: TestStore;
  let database: Database<UserTables>;

  beforeAll(async () => {
    store = await createTestStore('postgres');
    database = await openDatabase<UserTables>(storeOptionsOf(store, 4), { prepare: async (db) => void (await migrateToLatest(db)) });
  });
  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  it('are not kept while the listening connection is lost, and are kept again once it is back', async () => {
    const { db, reads } = countingReads(database.db);
    const users = createUserQueries(db);
    const cache = accountCacheOf(db);
    const states: boolean[] = [];
    const stop = await database.listen(USER_CHANGES_CHANNEL, {
      message: (id) => cache.changed(id),
      state: (on) => {
        states.push(on);
        cache.listening(on);
      },
    });
    const admin = new pg.Client({ connectionString: (store as { url: string }).url });
    await admin.connect();
    try {
      const user = await users.insert({ email: 'lost@example.com', name: 'Kept', passwordHash: null, emailVerified: true });
      await users.findAccount(user.id);
      const kept = reads();
      await users.findAccount(user.id);
      expect(reads()).toBe(kept);

      await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where query = 'LISTEN ${USER_CHANGES_CHANNEL}' and datname = current_database()`);
      await until(() => states.includes(false), 'the lost connection to be noticed');
      // Meanwhile a change is made that no notice will report.
      await admin.query(`update users set disabled_at = now() where id = $1`, [user.id]);
      expect((await users.findAccount(user.id))!.disabled_at).toBeInstanceOf(Date);

      await until(() => states.at(-1) === true, 'listening again', 8_000);
      await users.findAccount(user.id);
      const resumed = reads();
      expect((await users.findAccount(user.id))!.disabled_at).toBeInstanceOf(Date);
      expect(reads()).toBe(resumed);
    } finally {
      await admin.end();
      await stop();
      cache.listening(false);
    }
  });
});
