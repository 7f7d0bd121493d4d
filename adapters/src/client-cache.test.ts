import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type CompiledQuery } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, STORE_KINDS, type TestStore } from '../../test/support/stores.ts';
import { CLIENT_CHANGES_CHANNEL, clientCacheOf } from './client-cache.ts';
import { openDatabase, type Database, type StoreOptions } from './database.ts';
import { createOidcAdapter } from './oidc-adapter.ts';
import type { OidcTables } from './tables.ts';

const storeOptions = (store: TestStore): StoreOptions =>
  store.kind === 'postgres' ? { kind: 'postgres', url: store.url, poolMax: 4 } : { kind: 'embedded', dataDir: store.dataDir };

/** Looks the client up until a lookup is served without a read (the notice of the write itself has come and gone). */
async function settled(find: () => Promise<unknown>, reads: () => number): Promise<void> {
  await until(async () => {
    const before = reads();
    await find();
    return reads() === before;
  }, 'the client to be kept');
}

async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Counts the statements that read client rows: the adapter runs its lookups as compiled statements through executeQuery. */
function countingReads(database: Database<OidcTables>) {
  let reads = 0;
  const target = database.db;
  const db = new Proxy(target, {
    get(_, property) {
      if (property === 'executeQuery') {
        return (query: CompiledQuery) => {
          if (/^\s*select\b/i.test(query.sql)) reads += 1;
          return target.executeQuery(query);
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { db, reads: () => reads };
}

const client = (name: string) => ({ client_id: 'cached-app', client_name: name, token_endpoint_auth_method: 'none' as const, redirect_uris: ['https://app.example/cb'] });

describe.each(STORE_KINDS)('the client cache on the %s store', (kind) => {
  let store: TestStore;
  let database: Database<OidcTables>;

  beforeAll(async () => {
    store = await createTestStore(kind);
    database = await openDatabase<OidcTables>(storeOptions(store), { prepare: async (db) => void (await migrateToLatest(db)) });
  });
  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  it('keeps a client while notices arrive, and forgets it when its row changes', async () => {
    const { db, reads } = countingReads(database);
    const Adapter = createOidcAdapter(db);
    const clients = new Adapter('Client');
    const cache = clientCacheOf(db);
    const stop = await database.listen(CLIENT_CHANGES_CHANNEL, { message: (id) => cache.changed(id), state: (on) => cache.listening(on) });
    try {
      await clients.upsert('cached-app', client('First'), 0);
      expect(await clients.find('cached-app')).toMatchObject({ client_name: 'First' });
      await settled(() => clients.find('cached-app'), reads);
      const before = reads();
      for (let i = 0; i < 5; i += 1) expect(await clients.find('cached-app')).toMatchObject({ client_name: 'First' });
      expect(reads()).toBe(before);

      // What is kept is shared and frozen: a caller cannot change it for the next request.
      const got = (await clients.find('cached-app'))!;
      expect(() => (got['redirect_uris'] as string[]).push('https://evil.example/cb')).toThrow(TypeError);
      expect(() => Object.assign(got, { client_name: 'Changed' })).toThrow(TypeError);
      expect((await clients.find('cached-app'))!['redirect_uris']).toEqual(['https://app.example/cb']);

      // Written behind the adapter's back (another process, or by hand): the notice makes it forget.
      await sql`update oidc_models set payload = jsonb_set(payload, '{redirect_uris}', '["https://moved.example/cb"]') where model = 'Client' and id = 'cached-app'`.execute(database.db);
      await until(async () => ((await clients.find('cached-app'))!['redirect_uris'] as string[])[0] === 'https://moved.example/cb', 'the changed client');

      await sql`delete from oidc_models where model = 'Client' and id = 'cached-app'`.execute(database.db);
      await until(async () => (await clients.find('cached-app')) === undefined, 'the deleted client to be gone');
    } finally {
      await stop();
      cache.listening(false);
    }
  });

  it('keeps nothing while change notices are not received', async () => {
    const { db, reads } = countingReads(database);
    const clients = new (createOidcAdapter(db))('Client');
    await clients.upsert('cached-app', client('Any'), 0);
    const before = reads();
    await clients.find('cached-app');
    await clients.find('cached-app');
    expect(reads() - before).toBe(2);
    expect(clientCacheOf(db).size).toBe(0);
  });

});

describe('the client cache on Postgres', () => {
  let store: TestStore;
  let database: Database<OidcTables>;

  beforeAll(async () => {
    store = await createTestStore('postgres');
    database = await openDatabase<OidcTables>(storeOptions(store), { prepare: async (db) => void (await migrateToLatest(db)) });
  });
  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  it('stops keeping clients while its listening connection is lost, and resumes', async () => {
    const { db, reads } = countingReads(database);
    const clients = new (createOidcAdapter(db))('Client');
    const cache = clientCacheOf(db);
    const states: boolean[] = [];
    const stop = await database.listen(CLIENT_CHANGES_CHANNEL, {
      message: (id) => cache.changed(id),
      state: (on) => {
        states.push(on);
        cache.listening(on);
      },
    });
    try {
      await clients.upsert('cached-app', client('Kept'), 0);
      await settled(() => clients.find('cached-app'), reads);
      const before = reads();
      await clients.find('cached-app');
      expect(reads()).toBe(before);

      const admin = new pg.Client({ connectionString: (store as { url: string }).url });
      await admin.connect();
      try {
        await admin.query(`select pg_terminate_backend(pid) from pg_stat_activity where query = 'LISTEN ${CLIENT_CHANGES_CHANNEL}' and datname = current_database()`);
        await until(() => states.includes(false), 'the lost connection to be noticed');
        // Meanwhile a change is made that no notice will report.
        await admin.query(`update oidc_models set payload = jsonb_set(payload, '{client_name}', '"Renamed"') where model = 'Client' and id = 'cached-app'`);
        expect(await clients.find('cached-app')).toMatchObject({ client_name: 'Renamed' });
        await until(() => states.at(-1) === true, 'listening again', 8_000);
        await settled(() => clients.find('cached-app'), reads);
        const resumed = reads();
        expect(await clients.find('cached-app')).toMatchObject({ client_name: 'Renamed' });
        expect(reads()).toBe(resumed);
      } finally {
        await admin.end();
      }
    } finally {
      await stop();
      cache.listening(false);
    }
  });
});
