import { readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kysely, sql, type Generated } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, type TestStore } from '../../test/support/stores.ts';
import { openEmbeddedStore, type EmbeddedStore } from './embedded.ts';
import { PGliteDialect } from './pglite-dialect.ts';

interface TestTables {
  items: { id: Generated<number>; tag: string };
  typed: { id: number; at: Date; doc: unknown; flag: boolean; note: string | null };
}

/** Fails instead of hanging when the single-connection queue is stuck. */
async function within<T>(promise: Promise<T>, ms = 5_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: is the connection queue stuck?`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Settles a promise into a value now, so a rejection is never left unhandled while we wait on something else. */
function settle<T>(promise: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: unknown }> {
  return promise.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );
}

describe('PGlite kysely dialect', () => {
  let store: TestStore | undefined;
  let embedded: EmbeddedStore | undefined;
  let db: Kysely<TestTables>;

  const count = async (table: 'items' | 'typed' = 'items', executor: Kysely<TestTables> = db) =>
    (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(executor)).rows[0]?.n;

  /** true when the connection is not inside an open transaction block. */
  const autocommit = async () =>
    (await sql<{ autocommit: boolean }>`select transaction_timestamp() = statement_timestamp() as autocommit`.execute(db))
      .rows[0]?.autocommit;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    embedded = await openEmbeddedStore(store.dataDir);
    db = new Kysely<TestTables>({ dialect: new PGliteDialect(embedded.pglite) });
    await sql`create table items (id serial primary key, tag text not null)`.execute(db);
    await sql`create table typed (id int primary key, at timestamptz not null, doc jsonb not null, flag boolean not null, note text)`.execute(db);
  });

  afterAll(async () => {
    try {
      await db?.destroy();
      await embedded?.close();
    } finally {
      await store?.drop();
    }
  });

  beforeEach(async () => {
    await sql`truncate items, typed`.execute(db);
  });

  it('runs two concurrent transactions one after the other, never interleaved', async () => {
    const events: string[] = [];
    const run = (name: string) =>
      db.transaction().execute(async (trx) => {
        events.push(`${name}:begin`);
        await trx.insertInto('items').values({ tag: name }).execute();
        await sleep(50);
        const seen = await count('items', trx);
        events.push(`${name}:end`);
        return seen;
      });

    const [a, b] = await within(Promise.all([run('a'), run('b')]));

    // Serialised: whichever ran first saw only its own row; the second saw both.
    expect([a, b].sort()).toStrictEqual([1, 2]);
    expect(events).toHaveLength(4);
    expect(events[0]?.split(':')[0]).toBe(events[1]?.split(':')[0]);
    expect(events[2]?.split(':')[0]).toBe(events[3]?.split(':')[0]);
    expect(await count()).toBe(2);
    expect(await autocommit()).toBe(true);
  });

  it('makes a query issued during a transaction wait for it, so it never sees uncommitted rows', async () => {
    let signalInserted!: () => void;
    const inserted = new Promise<void>((resolve) => {
      signalInserted = resolve;
    });
    const transaction = settle(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ tag: 'uncommitted' }).execute();
        signalInserted();
        await sleep(100);
        throw new Error('roll it back');
      }),
    );

    await inserted;
    // On one shared session this would see the uncommitted row; queued behind the transaction it sees none.
    const outside = await within(count());
    expect(outside).toBe(0);

    const result = await transaction;
    expect(result.ok).toBe(false);
    expect(!result.ok && (result.error as Error).message).toBe('roll it back');
  });

  it('leaves nothing behind when a transaction rolls back, DDL included', async () => {
    await db.insertInto('items').values({ tag: 'kept' }).execute();

    const result = await settle(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values([{ tag: 'gone-1' }, { tag: 'gone-2' }]).execute();
        await sql`create table rolled_back_table (a int)`.execute(trx);
        await sql`update items set tag = 'changed' where tag = 'kept'`.execute(trx);
        expect(await count('items', trx)).toBe(3);
        throw new Error('abort');
      }),
    );
    expect(result.ok).toBe(false);

    const rows = await db.selectFrom('items').select('tag').execute();
    expect(rows).toStrictEqual([{ tag: 'kept' }]);
    const table = await sql<{ name: string | null }>`select to_regclass('rolled_back_table')::text as name`.execute(db);
    expect(table.rows[0]?.name).toBeNull();
    expect(await autocommit()).toBe(true);
  });

  it('commits a transaction that returns normally', async () => {
    const value = await db.transaction().execute(async (trx) => {
      await trx.insertInto('items').values({ tag: 'committed' }).execute();
      return 'done';
    });
    expect(value).toBe('done');
    expect(await db.selectFrom('items').select('tag').execute()).toStrictEqual([{ tag: 'committed' }]);
    expect(await autocommit()).toBe(true);
  });

  it('runs a statement without parameters holding several commands, answering with the last', async () => {
    const result = await sql
      .raw<{ total: number }>(
        `create table multi_a (a int);
         insert into multi_a values (1), (2), (3);
         create table multi_b (b text);
         insert into multi_b values ('x');
         select (select sum(a) from multi_a)::int + (select count(*) from multi_b)::int as total;`,
      )
      .execute(db);
    expect(result.rows).toStrictEqual([{ total: 7 }]);

    // Unparameterised DML goes through the same path and reports its affected rows.
    const update = await sql.raw(`update multi_a set a = a + 1`).execute(db);
    expect(update.numAffectedRows).toBe(3n);
    const values = await sql<{ a: number }>`select a from multi_a order by a`.execute(db);
    expect(values.rows).toStrictEqual([{ a: 2 }, { a: 3 }, { a: 4 }]);
    expect(await autocommit()).toBe(true);
  });

  it('applies the SQL file migrations (multi-command, one transaction each), once', async () => {
    const migrationStore = await createTestStore('embedded');
    const migrationEmbedded = await openEmbeddedStore(migrationStore.dataDir);
    const migrationDb = new Kysely<unknown>({ dialect: new PGliteDialect(migrationEmbedded.pglite) });
    try {
      const files = readdirSync(new URL('../../migrations/sql/', import.meta.url)).filter((name) => name.endsWith('.sql')).sort();
      expect(files.length).toBeGreaterThanOrEqual(4);
      expect(await migrateToLatest(migrationDb)).toStrictEqual(files.map((name) => name.replace(/\.sql$/, '')));
      expect(await migrateToLatest(migrationDb)).toStrictEqual([]);
      const tables = await sql<{ name: string }>`
        select table_name as name from information_schema.tables
        where table_schema = 'public' and table_name in ('oidc_models', 'users', 'signing_keys')
        order by table_name`.execute(migrationDb);
      expect(tables.rows.map((row) => row.name)).toStrictEqual(['oidc_models', 'signing_keys', 'users']);
    } finally {
      await migrationDb.destroy();
      await migrationEmbedded.close();
      await migrationStore.drop();
    }
  });

  it('returns typed values from parameterised queries', async () => {
    const at = new Date('2030-01-02T03:04:05.678Z');
    const doc = { nested: { list: [1, 'two', null, false] }, text: 'Zoë ✓' };

    const selected = await sql<{ at: Date; doc: unknown; flag: boolean; n: number; text: string; nothing: null }>`
      select ${at.toISOString()}::timestamptz as at, ${JSON.stringify(doc)}::jsonb as doc,
             ${true}::boolean as flag, ${41}::int + 1 as n, ${'plain'}::text as text, ${null}::text as nothing`.execute(db);
    const row = selected.rows[0];
    expect(row?.at).toBeInstanceOf(Date);
    expect(row?.at.getTime()).toBe(at.getTime());
    expect(row?.doc).toStrictEqual(doc);
    expect(row?.flag).toBe(true);
    expect(row?.n).toBe(42);
    expect(row?.text).toBe('plain');
    expect(row?.nothing).toBeNull();

    await db
      .insertInto('typed')
      .values([
        { id: 1, at, doc: JSON.stringify(doc), flag: false, note: null },
        { id: 2, at, doc: JSON.stringify([1, 2]), flag: true, note: 'two' },
      ])
      .execute();
    const stored = await db.selectFrom('typed').selectAll().where('id', '=', 1).executeTakeFirstOrThrow();
    expect(stored).toStrictEqual({ id: 1, at, doc, flag: false, note: null });

    // Affected-row counts of parameterised statements (sweepExpired relies on numDeletedRows).
    const updated = await db.updateTable('typed').set({ flag: true }).where('id', 'in', [1, 2]).executeTakeFirst();
    expect(updated.numUpdatedRows).toBe(2n);
    const deleted = await db.deleteFrom('typed').where('id', '=', 2).executeTakeFirst();
    expect(deleted.numDeletedRows).toBe(1n);
    const returned = await db.deleteFrom('typed').where('id', '=', 1).returning(['id', 'flag']).execute();
    expect(returned).toStrictEqual([{ id: 1, flag: true }]);
  });

  it('rejects an SQL error inside a transaction, rolls it back, and stays usable', async () => {
    let signalStarted!: () => void;
    const started = new Promise<void>((resolve) => {
      signalStarted = resolve;
    });
    const failing = settle(
      db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ tag: 'before-error' }).execute();
        signalStarted();
        await sleep(30);
        await sql`select * from no_such_table where id = ${1}`.execute(trx);
        return 'unreachable';
      }),
    );
    await started;
    // Queued behind the failing transaction: it must get the connection once the transaction fails.
    const queued = within(count());

    const result = await within(failing);
    expect(result.ok).toBe(false);
    expect(!result.ok && (result.error as Error).message).toMatch(/no_such_table.*does not exist/);
    expect(await queued).toBe(0);

    expect(await within(count())).toBe(0);
    expect(await within(autocommit())).toBe(true);
    await within(db.insertInto('items').values({ tag: 'after' }).execute());
    expect(await within(count())).toBe(1);
  });

  it('rejects an SQL error outside a transaction, with or without parameters, and stays usable', async () => {
    await expect(sql`selec 1`.execute(db)).rejects.toThrow(/syntax error/);
    await expect(sql`select ${'x'}::int`.execute(db)).rejects.toThrow(/invalid input syntax/);
    await expect(sql.raw(`insert into items (tag) values ('ok'); insert into items (tag) values (null)`).execute(db)).rejects.toThrow(
      /null value/,
    );
    // The simple protocol runs a multi-command string as one implicit transaction: nothing of it stays.
    expect(await within(count())).toBe(0);
    expect(await within(autocommit())).toBe(true);
    const ok = await within(sql<{ one: number }>`select ${1}::int as one`.execute(db));
    expect(ok.rows).toStrictEqual([{ one: 1 }]);
  });

  it('refuses streaming queries', async () => {
    const stream = db.selectFrom('items').selectAll().stream();
    await expect(stream.next()).rejects.toThrow(/streaming queries are not supported/);
    expect(await within(count())).toBe(0);
  });
});
