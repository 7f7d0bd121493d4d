import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, SYSTEM_ROLE, type Database } from '@jobswipe/adapters';
import { migrateTo, migrateToLatest } from '@jobswipe/migrations';
import { runToExit, spawnNode, type Running } from '../../../test/support/processes.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { createTestStore, STORE_KINDS, storeEnvironment, type TestStore, storeOptionsOf } from '../../../test/support/stores.ts';
import { chainHash, GENESIS_HASH, type ChainedEvent } from '../../src/audit/chain.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import { chainedEventOf, createAuditLog, type AuditLog } from '../../src/audit/log.ts';
import { AUDIT_SEALER_LOCK } from '../../src/audit/seal-queries.ts';
import { startSealing } from '../../src/audit/sealer.ts';
import type { AuditTables } from '../../src/audit/tables.ts';
import { verifyChain } from '../../src/audit/verify.ts';
import { createLogger } from '../../src/logger.ts';
import { until } from '../../../test/support/waiting.ts';

const CLI_ENTRY = 'idp/src/cli/main.ts';
const USER = '0b5e4c0e-3f55-4a4e-9d7e-6c1f1c2b9a01';

function event(n: number): AuditEvent {
  return { type: 'login.failure', outcome: 'failure', userId: USER, clientId: 'web', ip: `198.51.100.${n % 250}`, userAgent: 'chain test', details: { reason: 'wrong_password', n } };
}

const strictLog = (db: Kysely<AuditTables>): AuditLog =>
  createAuditLog(db, (error) => {
    throw error;
  });


const count = async (db: Kysely<AuditTables>, table: 'audit_events' | 'audit_seals') =>
  Number((await db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

/** Owner-only escape hatch of the tests: the append-only triggers off while `fn` runs. */
async function disabledTriggers<T>(db: Kysely<AuditTables>, fn: () => Promise<T>): Promise<T> {
  await sql`alter table audit_events disable trigger audit_events_append_only`.execute(db);
  await sql`alter table audit_seals disable trigger audit_seals_append_only`.execute(db);
  try {
    return await fn();
  } finally {
    await sql`alter table audit_events enable trigger audit_events_append_only`.execute(db);
    await sql`alter table audit_seals enable trigger audit_seals_append_only`.execute(db);
  }
}

/** What a superuser covering their tracks does: rewrites every seal from `fromSeq` on so the chain verifies again. */
async function recomputeSeals(db: Kysely<AuditTables>, fromSeq: number): Promise<void> {
  const seals = await db.selectFrom('audit_seals').selectAll().where('seq', '>=', fromSeq - 1).orderBy('seq').execute();
  let prev = fromSeq === 1 ? GENESIS_HASH : seals.shift()!.hash;
  for (const seal of seals) {
    const row = await db.selectFrom('audit_events').selectAll().where('id', '=', Number(seal.event_id)).executeTakeFirstOrThrow();
    const hash = chainHash(prev, chainedEventOf(row));
    await sql`update audit_seals set prev_hash = ${prev}, hash = ${hash} where seq = ${seal.seq}`.execute(db);
    prev = hash;
  }
}

describe.each(STORE_KINDS)('audit chain and its guards (%s store)', (kind) => {
  let store: TestStore;
  let database: Database<AuditTables>;
  let db: Kysely<AuditTables>;
  /** The server's role: pools of their own on Postgres; on the embedded store (one session), SET ROLE around fn. */
  async function asSystem<T>(fn: (dbs: Array<Kysely<AuditTables>>) => Promise<T>, pools = 3): Promise<T> {
    if (store.kind === 'embedded') {
      await sql`set role ${sql.id(SYSTEM_ROLE)}`.execute(db);
      try {
        return await fn([db]);
      } finally {
        await sql`reset role`.execute(db);
      }
    }
    const opened = await Promise.all(Array.from({ length: pools }, () => openDatabase<AuditTables>(storeOptionsOf(store, 5), { role: SYSTEM_ROLE })));
    try {
      return await fn(opened.map((one) => one.db));
    } finally {
      await Promise.all(opened.map((one) => one.close()));
    }
  }

  beforeAll(async () => {
    store = await createTestStore(kind);
    // The owner, as migrations and an attacker with the owner's password would connect.
    database = await openDatabase<AuditTables>(storeOptionsOf(store, 5));
    db = database.db;
    await migrateToLatest(db);
  });

  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  /** Runs one statement as the server's role, inside a transaction rolled back afterwards. */
  async function asServerRole(statement: string, role = 'jobswipe_system'): Promise<string> {
    const rolledBack = new Error('rolled back');
    try {
      await db.transaction().execute(async (trx) => {
        await sql`set local role ${sql.id(role)}`.execute(trx);
        await sql.raw(statement).execute(trx);
        throw rolledBack;
      });
    } catch (error) {
      return error === rolledBack ? 'allowed' : (error as Error).message;
    }
    return 'allowed';
  }

  it('seals events written at once from several connections into one chain, each exactly once', async () => {
    await asSystem(async (dbs) => {
      const logs = dbs.map(strictLog);
      // Sealers race the writers (and each other) in small batches: many sealing transactions.
      let writing = true;
      const sealers = logs.map(async (log) => {
        while (writing) await log.seal({ batch: 7 });
      });
      const results = await Promise.all(Array.from({ length: 300 }, (_, n) => logs[n % logs.length]!.append(event(n))));
      writing = false;
      await Promise.all(sealers);
      await logs[0]!.seal({ waitMs: 5_000 });
      expect(new Set(results.map((result) => result.id)).size).toBe(300);
    });
    const seals = await db.selectFrom('audit_seals').select(['seq', 'event_id', 'prev_hash', 'hash']).orderBy('seq').execute();
    expect(seals).toHaveLength(300);
    expect(new Set(seals.map((seal) => Number(seal.event_id))).size).toBe(300);
    expect(seals.map((seal) => Number(seal.seq))).toEqual(Array.from({ length: 300 }, (_, n) => n + 1));
    // Each seal's predecessor is the seal before it: nothing branches.
    seals.forEach((seal, index) => index > 0 && expect(seal.prev_hash).toBe(seals[index - 1]!.hash));
    expect(await verifyChain(db)).toEqual({ intact: true, count: 300, head: { id: 300, hash: seals[299]!.hash }, unsealed: { count: 0, oldest: undefined } });
  });

  it('groups the appends that arrive while an insert is in flight into one multi-row insert', async () => {
    const log = strictLog(db);
    const ids = (await Promise.all(Array.from({ length: 50 }, (_, n) => log.append(event(n))))).map((result) => result.id);
    // Rows of one INSERT share its transaction: the first went alone, the 49 that queued behind it together.
    const { rows } = await sql<{ transactions: string | number }>`select count(distinct tx) as transactions from audit_events where id in (${sql.join(ids)})`.execute(db);
    expect(Number(rows[0]!.transactions)).toBe(2);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    expect(await log.seal()).toBe(50);
    await expect(log.append({ type: 'login.failure', outcome: 'failure', details: { token: 'x' } })).rejects.toThrow(/may not carry/);
  });

  it('reports the unsealed tail and its age, and seals it', async () => {
    const log = strictLog(db);
    for (let n = 0; n < 3; n += 1) await log.append(event(n));
    await sleep(50);
    const report = await verifyChain(db);
    expect(report).toMatchObject({ intact: true, count: 350, unsealed: { count: 3, oldest: expect.any(Date) } });
    expect(await log.sealLag()).toBeGreaterThan(0.03);
    expect(await log.seal()).toBe(3);
    expect(await log.sealLag()).toBe(0);
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353, unsealed: { count: 0 } });
  });

  it('lets the server role insert and read events and seals, but not change or delete them, nor choose tx', async () => {
    for (const table of ['audit_events', 'audit_seals']) expect(await asServerRole(`select count(*) from ${table}`)).toBe('allowed');
    expect(await asServerRole(`insert into audit_events (occurred_at, event_type, outcome) values (now(), 'login.success', 'success')`)).toBe('allowed');
    expect(await asServerRole(`insert into audit_seals (seq, event_id, prev_hash, hash) values (100000, 100000, '${'a'.repeat(64)}', '${'b'.repeat(64)}')`)).toBe('allowed');
    // The inserting transaction is recorded by the trigger, whatever the writer says.
    let tx: { tx: string; current: string } | undefined;
    await db
      .transaction()
      .execute(async (trx) => {
        await sql`set local role jobswipe_system`.execute(trx);
        const { rows } = await sql<{ tx: string; current: string }>`insert into audit_events (occurred_at, event_type, outcome, tx) values (now(), 'login.success', 'success', '3') returning tx::text as tx, pg_current_xact_id()::text as current`.execute(trx);
        tx = rows[0];
        throw new Error('rolled back');
      })
      .catch(() => {});
    expect(tx?.tx).toBe(tx?.current);
    for (const table of ['audit_events', 'audit_seals']) {
      for (const statement of [`update ${table} set event_id = 1 where false`.replace('event_id', table === 'audit_events' ? 'outcome' : 'event_id'), `delete from ${table} where true`, `truncate ${table}`]) {
        expect(await asServerRole(statement), statement).toMatch(new RegExp(`permission denied for table ${table}`));
      }
      // The user-facing role has nothing on the audit log.
      expect(await asServerRole(`select count(*) from ${table}`, 'jobswipe_user')).toMatch(new RegExp(`permission denied for table ${table}`));
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353 });
  });

  it('refuses UPDATE, DELETE and TRUNCATE of events and seals even to the owner while the triggers are on', async () => {
    for (const statement of [
      "update audit_events set outcome = 'success' where id = 1",
      'delete from audit_events where id = 40',
      'truncate audit_events',
      "update audit_seals set prev_hash = hash where seq = 2",
      'delete from audit_seals where seq = 40',
      'truncate audit_seals',
    ]) {
      await expect(sql.raw(statement).execute(db), statement).rejects.toThrow(/audit_(events|seals) is append-only: (UPDATE|DELETE|TRUNCATE) refused/);
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353 });
  });

  it('names a changed event, a rewritten seal, a deleted seal and a deleted event; intact again once repaired', async () => {
    const seal7 = await db.selectFrom('audit_seals').selectAll().where('seq', '=', 7).executeTakeFirstOrThrow();
    const event7 = await db.selectFrom('audit_events').selectAll().where('id', '=', Number(seal7.event_id)).executeTakeFirstOrThrow();
    const e7 = Number(seal7.event_id);

    await disabledTriggers(db, () => sql`update audit_events set ip = '192.0.2.99' where id = ${e7}`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 7, count: 6, problem: `audit event ${e7} (sealed at position 7) was changed: its fields do not match its seal's hash` });

    // Changed with a recomputed seal: the next seal no longer follows it.
    const forged = chainHash(seal7.prev_hash, { ...chainedEventOf(event7), ip: '192.0.2.99' });
    await disabledTriggers(db, () => sql`update audit_seals set hash = ${forged} where seq = 7`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 8, problem: expect.stringMatching(/^audit seal 8 does not follow seal 7: its prev_hash/) });

    await disabledTriggers(db, async () => {
      await sql`update audit_events set ip = ${event7.ip} where id = ${e7}`.execute(db);
      await sql`update audit_seals set hash = ${seal7.hash} where seq = 7`.execute(db);
    });
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353 });

    const seals = await db.selectFrom('audit_seals').selectAll().where('seq', 'in', [1, 12]).orderBy('seq').execute();
    await disabledTriggers(db, () => sql`delete from audit_seals where seq = 12`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 12, count: 11, problem: 'audit seal 12 is missing (seal 13 follows seal 11)' });
    await disabledTriggers(db, () => sql`delete from audit_seals where seq = 1`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 1, count: 0, problem: 'audit seal 1 is missing (seal 2 follows the start of the chain)' });
    for (const seal of seals) {
      await sql`insert into audit_seals (seq, event_id, prev_hash, hash, sealed_at) values (${seal.seq}, ${seal.event_id}, ${seal.prev_hash}, ${seal.hash}, ${seal.sealed_at})`.execute(db);
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353 });

    const e20 = Number((await db.selectFrom('audit_seals').select('event_id').where('seq', '=', 20).executeTakeFirstOrThrow()).event_id);
    const row = await db.selectFrom('audit_events').selectAll().where('id', '=', e20).executeTakeFirstOrThrow();
    await disabledTriggers(db, () => sql`delete from audit_events where id = ${e20}`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 20, count: 19, problem: `audit event ${e20} (sealed at position 20) is missing` });
    // The same row put back: every byte the hashes cover survives the round trip through the store.
    await sql`insert into audit_events (id, occurred_at, event_type, outcome, user_id, client_id, session_id, ip, user_agent, details) values (${row.id}, ${row.occurred_at}, ${row.event_type}, ${row.outcome}, ${row.user_id}, ${row.client_id}, ${row.session_id}, ${row.ip}, ${row.user_agent}, ${JSON.stringify(row.details)})`.execute(db);
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353, unsealed: { count: 0 } });
  });

  it('a rewritten and recomputed chain verifies without an anchor, and fails against a kept one', async () => {
    const log = strictLog(db);
    const kept = (await log.head())!;
    expect(kept.id).toBe(353);
    const early = await db.selectFrom('audit_seals').select(['seq', 'hash']).where('seq', '=', 50).executeTakeFirstOrThrow();
    expect(await verifyChain(db, kept)).toMatchObject({ intact: true, count: 353, anchor: kept });

    const e100 = Number((await db.selectFrom('audit_seals').select('event_id').where('seq', '=', 100).executeTakeFirstOrThrow()).event_id);
    const original = await db.selectFrom('audit_events').select('outcome').where('id', '=', e100).executeTakeFirstOrThrow();
    await disabledTriggers(db, async () => {
      await sql`update audit_events set outcome = 'success' where id = ${e100}`.execute(db);
      await recomputeSeals(db, 100);
    });
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 353 });
    const report = await verifyChain(db, kept);
    expect(report).toMatchObject({ intact: false, anchor: true, id: 353, problem: expect.stringMatching(/^the chain does not contain the anchor 353:[0-9a-f]{64}: seal 353 has hash [0-9a-f]{64} \(the chain was rewritten at or before it\)$/) });
    // A head kept before the rewritten part still holds.
    expect(await verifyChain(db, { id: 50, hash: early.hash })).toMatchObject({ intact: true });

    // Back as it was, then the newest seals and their events removed: shorter, consistent, and short of the anchor.
    await disabledTriggers(db, async () => {
      await sql`update audit_events set outcome = ${original.outcome} where id = ${e100}`.execute(db);
      await recomputeSeals(db, 100);
    });
    expect(await verifyChain(db, kept)).toMatchObject({ intact: true });
    const tail = await db.selectFrom('audit_seals').selectAll().where('seq', '>', 350).execute();
    const tailEvents = await db.selectFrom('audit_events').selectAll().where('id', 'in', tail.map((seal) => Number(seal.event_id))).execute();
    await disabledTriggers(db, async () => {
      await sql`delete from audit_seals where seq > 350`.execute(db);
      await sql`delete from audit_events where id in (${sql.join(tailEvents.map((row) => Number(row.id)))})`.execute(db);
    });
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 350 });
    expect(await verifyChain(db, kept)).toMatchObject({ intact: false, anchor: true, problem: `the chain does not contain the anchor 353:${kept.hash}: it ends at seal 350 (seals were removed)` });
    for (const row of tailEvents) {
      await sql`insert into audit_events (id, occurred_at, event_type, outcome, user_id, client_id, session_id, ip, user_agent, details) values (${row.id}, ${row.occurred_at}, ${row.event_type}, ${row.outcome}, ${row.user_id}, ${row.client_id}, ${row.session_id}, ${row.ip}, ${row.user_agent}, ${JSON.stringify(row.details)})`.execute(db);
    }
    for (const seal of tail) {
      await sql`insert into audit_seals (seq, event_id, prev_hash, hash, sealed_at, horizon) values (${seal.seq}, ${seal.event_id}, ${seal.prev_hash}, ${seal.hash}, ${seal.sealed_at}, ${seal.horizon}::pg_snapshot)`.execute(db);
    }
    expect(await verifyChain(db, kept)).toMatchObject({ intact: true, count: 353 });
  });

  it('refuses details that would carry a secret, and stores only uuids as user ids', async () => {
    const log = strictLog(db);
    await expect(log.append({ type: 'login.failure', outcome: 'failure', details: { password: 'hunter2hunter2' } })).rejects.toThrow(/may not carry "password"/);
    await expect(log.append({ type: 'token.issued', outcome: 'success', details: { refresh_token: 'x' } })).rejects.toThrow(/may not carry/);
    const { id } = await log.append({ type: 'login.failure', outcome: 'failure', userId: 'alice@example.com', userAgent: 'nul\u0000 and \ud800 lone' });
    const row = await db.selectFrom('audit_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.user_id).toBeNull();
    expect(row.user_agent).toBe('nul and \ufffd lone');
    await log.seal();
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 354 });
  });

  it('stores every value of a group exactly, whatever characters it holds', async () => {
    const log = strictLog(db);
    const awkward = ['quote " and \\ backslash', '{braces}, commas', 'NULL', '', 'ünïcödé ✓ 😀', 'line\nbreak\ttab', "it's"];
    const events: AuditEvent[] = awkward.map((value, n) => ({
      type: 'login.failure',
      outcome: n % 2 === 0 ? 'failure' : 'success',
      userId: n % 3 === 0 ? undefined : USER,
      clientId: value || undefined,
      sessionId: n % 2 === 0 ? `s-${value}` : undefined,
      ip: n % 2 === 0 ? '2001:db8::1' : undefined,
      userAgent: value,
      details: { note: value, n, flag: n % 2 === 0, none: null },
    }));
    const ids = (await Promise.all(events.map((item) => log.append(item)))).map((result) => result.id);
    const rows = await db.selectFrom('audit_events').selectAll().where('id', 'in', ids).orderBy('id').execute();
    expect(rows.map((row) => ({ client: row.client_id, session: row.session_id, agent: row.user_agent, user: row.user_id, ip: row.ip, outcome: row.outcome, details: row.details }))).toEqual(
      awkward.map((value, n) => ({
        client: value || null,
        session: n % 2 === 0 ? `s-${value}` : null,
        agent: value || null,
        user: n % 3 === 0 ? null : USER,
        ip: n % 2 === 0 ? '2001:db8::1' : null,
        outcome: n % 2 === 0 ? 'failure' : 'success',
        details: { note: value || null, n, flag: n % 2 === 0, none: null },
      })),
    );
    expect(await log.seal()).toBe(awkward.length);
    expect(await verifyChain(db)).toMatchObject({ intact: true });
  });

  it('keeps the seal lag under 2 s while events are appended continuously', async () => {
    await asSystem(async (dbs) => {
      const logs = dbs.map(strictLog);
      const sealing = logs.map((log) => startSealing(log, createLogger('silent')));
      let lag = 0;
      let written = 0;
      const until = Date.now() + 4_000;
      const writers = logs.map(async (log) => {
        while (Date.now() < until) {
          await Promise.all(Array.from({ length: 8 }, (_, n) => log.append(event(n))));
          written += 8;
        }
      });
      const sampler = (async () => {
        while (Date.now() < until) {
          lag = Math.max(lag, await logs[0]!.sealLag());
          await sleep(100);
        }
      })();
      await Promise.all([...writers, sampler]);
      await Promise.all(sealing.map((one) => one.stop()));
      expect(written).toBeGreaterThan(100);
      expect(lag).toBeLessThan(2);
      expect(lag).toBeGreaterThan(0);
    }, 2);
    expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 0 } });
  });

  // Postgres only: a second connection while the first holds a transaction open (the embedded store is
  // one session). Registered for the Postgres run only, so nothing shows as skipped.
  const postgresOnly = (name: string, test: () => Promise<void>, timeout?: number) => {
    if (kind === 'postgres') it(name, test, timeout);
  };

  postgresOnly('seals an event that commits after later ones were sealed, and the chain stays intact', async () => {
    if (store.kind !== 'postgres') return;
    const late = new pg.Client({ connectionString: store.url });
    await late.connect();
    try {
      await late.query('begin');
      await late.query('set local role jobswipe_system');
      const { rows } = await late.query<{ id: string }>(
        "insert into audit_events (occurred_at, event_type, outcome, details) values (date_trunc('milliseconds', now()), 'login.failure', 'failure', '{\"late\": true}') returning id",
      );
      const lateId = Number(rows[0]!.id);
      await asSystem(async ([system]) => {
        const log = strictLog(system!);
        for (let n = 0; n < 5; n += 1) {
          await log.append(event(n));
          expect(await log.seal()).toBe(1);
        }
        // Later ids are sealed; the open one is invisible to everyone else.
        expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 0 } });
        await late.query('commit');
        expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 1 } });
        expect(await log.sealLag()).toBeGreaterThan(0);
        expect(await log.seal()).toBe(1);
      }, 1);
      const lateSeal = await db.selectFrom('audit_seals').select('seq').where('event_id', '=', lateId).executeTakeFirstOrThrow();
      const nextSeal = await db.selectFrom('audit_seals').select('seq').where('event_id', '=', lateId + 1).executeTakeFirstOrThrow();
      expect(Number(lateSeal.seq)).toBeGreaterThan(Number(nextSeal.seq));
      expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 0, oldest: undefined } });
    } finally {
      await late.end();
    }
  });

  postgresOnly('takes no lock on the write path: appends complete while another connection holds the sealer lock', async () => {
    if (store.kind !== 'postgres') return;
    const holder = new pg.Client({ connectionString: store.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query(`select pg_advisory_xact_lock(${AUDIT_SEALER_LOCK})`);
      await asSystem(async ([system]) => {
        const log = strictLog(system!);
        const started = Date.now();
        await Promise.all(Array.from({ length: 100 }, (_, n) => log.append(event(n))));
        for (let n = 0; n < 10; n += 1) await log.append(event(n));
        expect(Date.now() - started).toBeLessThan(3_000);
        // The sealer does not wait for the lock: it skips.
        const skipped = Date.now();
        expect(await log.seal()).toBe(0);
        expect(Date.now() - skipped).toBeLessThan(1_000);
        expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 110 } });
        await holder.query('commit');
        expect(await log.seal()).toBe(110);
      }, 1);
    } finally {
      await holder.end();
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 0 } });
  });

  postgresOnly('never forks: a seal at a taken position, or with a used prev_hash, is refused', async () => {
    const head = (await strictLog(db).head())!;
    const { id } = await strictLog(db).append(event(1));
    const row = await db.selectFrom('audit_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    const prev = await db.selectFrom('audit_seals').select('hash').where('seq', '=', head.id - 1).executeTakeFirstOrThrow();
    // A second successor of the head's predecessor (what two sealers without the lock would write).
    await expect(
      sql`insert into audit_seals (seq, event_id, prev_hash, hash) values (${head.id}, ${id}, ${prev.hash}, ${chainHash(prev.hash, chainedEventOf(row))})`.execute(db),
    ).rejects.toThrow(/duplicate key value violates unique constraint "audit_seals_pkey"/);
    await expect(
      sql`insert into audit_seals (seq, event_id, prev_hash, hash) values (${head.id + 1}, ${id}, ${prev.hash}, ${chainHash(prev.hash, chainedEventOf(row))})`.execute(db),
    ).rejects.toThrow(/duplicate key value violates unique constraint "audit_seals_prev_hash_key"/);
    expect(await strictLog(db).seal()).toBe(1);
    expect(await verifyChain(db)).toMatchObject({ intact: true, unsealed: { count: 0 } });
  });
});

describe.each(STORE_KINDS)('migration 0014 on a database with a chain written before it (%s store)', (kind) => {
  let store: TestStore;
  let database: Database<AuditTables>;

  beforeAll(async () => {
    store = await createTestStore(kind);
    database = await openDatabase<AuditTables>(storeOptionsOf(store, 5));
  });

  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  it('turns the existing chain into the first seals unchanged, and goes on from there', async () => {
    const { db } = database;
    await migrateTo(db, '0013_credential_ids_hashed');
    // The writer before 0014: id = last + 1, prev_hash and hash on the event itself.
    let prev = GENESIS_HASH;
    const start = Date.UTC(2026, 0, 1);
    for (let id = 1; id <= 25; id += 1) {
      const chained: ChainedEvent = { id, occurredAt: new Date(start + id * 1000), type: 'login.success', outcome: 'success', userId: USER, clientId: 'web', sessionId: null, ip: '192.0.2.1', userAgent: 'old writer', details: { n: id, amr: 'pwd' } };
      const hash = chainHash(prev, chained);
      await sql`insert into audit_events (id, occurred_at, event_type, outcome, user_id, client_id, ip, user_agent, details, prev_hash, hash) values (${id}, ${chained.occurredAt}, 'login.success', 'success', ${USER}, 'web', '192.0.2.1', 'old writer', ${JSON.stringify(chained.details)}, ${prev}, ${hash})`.execute(db);
      prev = hash;
    }
    const oldHead = { id: 25, hash: prev };
    expect(await migrateToLatest(db)).toContain('0014_audit_seals');

    expect(await verifyChain(db, oldHead)).toEqual({ intact: true, count: 25, head: oldHead, unsealed: { count: 0, oldest: undefined }, anchor: oldHead });
    const log = strictLog(db);
    const { id } = await log.append(event(1));
    expect(id).toBe(26);
    expect(await log.seal()).toBe(1);
    expect(await verifyChain(db, oldHead)).toMatchObject({ intact: true, count: 26, head: { id: 26 }, unsealed: { count: 0 } });
    expect(await count(db, 'audit_seals')).toBe(26);
  });
});

describe.each(STORE_KINDS)('migration 0014 keeps a broken chain broken (%s store)', (kind) => {
  it('a row changed and one deleted before the migration are still named after it', async () => {
    const store = await createTestStore(kind);
    const database = await openDatabase<AuditTables>(storeOptionsOf(store, 5));
    try {
      const { db } = database;
      await migrateTo(db, '0013_credential_ids_hashed');
      let prev = GENESIS_HASH;
      for (let id = 1; id <= 6; id += 1) {
        const chained: ChainedEvent = { id, occurredAt: new Date(Date.UTC(2026, 0, 1, 0, 0, id)), type: 'login.failure', outcome: 'failure', userId: null, clientId: null, sessionId: null, ip: null, userAgent: null, details: {} };
        const hash = chainHash(prev, chained);
        await sql`insert into audit_events (id, occurred_at, event_type, outcome, details, prev_hash, hash) values (${id}, ${chained.occurredAt}, 'login.failure', 'failure', '{}', ${prev}, ${hash})`.execute(db);
        prev = hash;
      }
      await sql.raw("alter table audit_events disable trigger audit_events_append_only; update audit_events set outcome = 'success' where id = 3; delete from audit_events where id = 5; alter table audit_events enable trigger audit_events_append_only").execute(db);
      await migrateToLatest(db);
      expect(await verifyChain(db)).toMatchObject({ intact: false, id: 3, problem: "audit event 3 (sealed at position 3) was changed: its fields do not match its seal's hash" });
      await sql.raw("alter table audit_events disable trigger audit_events_append_only; update audit_events set outcome = 'failure' where id = 3; alter table audit_events enable trigger audit_events_append_only").execute(db);
      // The deleted row left a gap in the chain positions.
      expect(await verifyChain(db)).toMatchObject({ intact: false, id: 5, problem: 'audit seal 5 is missing (seal 6 follows seal 4)' });
    } finally {
      await database.close();
      await store.drop();
    }
  });
});

describe.each(STORE_KINDS)('idp audit verify / tail against a running server (%s)', { timeout: 90_000 }, (kind) => {
  let idp: TestServer;
  let env: Record<string, string>;
  let tail: Running | undefined;
  const cli = (args: string[]) => runToExit(CLI_ENTRY, args, env, 45_000);

  beforeAll(async () => {
    idp = await startTestServer(kind);
    env = { ...storeEnvironment(idp.store), ISSUER: idp.issuer };
  });

  afterAll(async () => {
    await tail?.stop();
    await idp?.stop();
  });

  const rows = () => idp.server.database.db.selectFrom('audit_events').selectAll().orderBy('id').execute();

  it('records administrator commands with who ran them', async () => {
    const rotated = await cli(['keys', 'rotate']);
    expect(rotated.code, rotated.stderr).toBe(0);
    const keyRows = (await rows()).filter((row) => row.event_type.startsWith('key.') && row.details['by'] === 'administrator');
    expect(keyRows.map((row) => row.event_type)).toEqual(expect.arrayContaining(['key.promoted', 'key.retired']));
    for (const row of keyRows) expect(row.details).toMatchObject({ kid: expect.any(String), via: 'cli', operator: expect.any(String) });

    const result = await cli(['clients', 'create', '--client-id', 'audited', '--redirect-uri', 'https://audited.example/cb']);
    expect(result.code, result.stderr).toBe(0);
    const row = (await rows()).find((candidate) => candidate.event_type === 'admin.client_created');
    expect(row).toMatchObject({ outcome: 'success', client_id: 'audited', user_id: null, details: { via: 'cli', operator: expect.any(String) } });
    // The generated client secret it printed is not in the log.
    const secret = /client_secret: (\S+)/.exec(result.stdout)![1]!;
    expect(JSON.stringify(await rows())).not.toContain(secret);
  });

  it('prints the newest events, then follows new ones as they are sealed', async () => {
    await until(async () => ((await verifyChain(idp.server.database.db)).unsealed.count === 0 ? true : undefined), 'every event sealed');
    const before = await rows();
    tail = spawnNode(CLI_ENTRY, ['audit', 'tail', '--lines', '2'], env);
    const lines = () => tail!.stdout().split('\n').filter(Boolean);
    await until(() => (lines().length >= 2 ? true : undefined), `two lines from audit tail (stderr: ${tail.stderr()})`);
    expect(lines().map((line) => line.split('  ')[0])).toEqual(before.slice(-2).map((row) => String(row.id)));
    expect(lines()[1]).toMatch(/^\d+ {2}\d{4}-\d\d-\d\dT[\d:.]+Z {2}admin\.client_created {2}success {2}user=- {2}client=audited {2}session=- {2}ip=- {2}agent="" {2}details=\{.*\}$/);

    const { id } = await strictLog(idp.server.database.db).append(event(1));
    const line = await until(() => lines().find((text) => text.startsWith(`${id}  `)), 'the new event from audit tail');
    expect(line).toContain('login.failure  failure  user=0b5e4c0e-3f55-4a4e-9d7e-6c1f1c2b9a01  client=web');
    await tail.stop();
  });

  it('reports an intact chain, and the first changed event once one is changed', async () => {
    await until(async () => ((await verifyChain(idp.server.database.db)).unsealed.count === 0 ? true : undefined), 'every event sealed');
    const intact = await cli(['audit', 'verify']);
    expect(intact.err).toEqual([]);
    expect(intact.code).toBe(0);
    const count = (await rows()).length;
    expect(intact.out).toEqual([expect.stringMatching(new RegExp(`^audit chain intact: ${count} sealed events \\(head ${count}:[0-9a-f]{64}\\)$`)), 'unsealed tail: none']);

    // The owner changes a row behind the server's back (the embedded store: once the server has stopped).
    const tamper =
      "alter table audit_events disable trigger audit_events_append_only; update audit_events set outcome = case outcome when 'success' then 'failure' else 'success' end where id = (select event_id from audit_seals where seq = 2);";
    if (idp.store.kind === 'postgres') {
      const owner = new pg.Client({ connectionString: idp.store.url });
      await owner.connect();
      await owner.query(tamper).finally(() => owner.end());
    } else {
      await idp.server.close();
      const owner = await openDatabase(storeOptionsOf(idp.store, 5));
      await sql.raw(tamper).execute(owner.db).finally(() => owner.close());
    }
    const broken = await cli(['audit', 'verify']);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toBe('');
    expect(broken.err).toEqual([
      expect.stringMatching(/^idp audit verify: audit chain broken at seal 2: audit event \d+ \(sealed at position 2\) was changed: its fields do not match its seal's hash \(1 seal\(s\) before it are intact\)$/),
    ]);
  });
});

describe.each(STORE_KINDS)('the chain head in the log (%s)', { timeout: 90_000 }, (kind) => {
  it('is logged on an interval and on shutdown, with the chain position and hash', async () => {
    const idp = await startTestServer(kind, {}, { start: { audit: { headIntervalMs: 200 } } });
    try {
      type Line = { msg?: string; level?: number; id?: number; hash?: string; anchor?: string };
      const heads = () => idp.logs.map((line) => JSON.parse(line) as Line).filter((line) => line.msg === 'audit chain head');
      await until(() => (heads().length > 0 ? true : undefined), 'an audit chain head line');
      expect(heads()[0]).toMatchObject({ level: 30, id: expect.any(Number), hash: expect.stringMatching(/^[0-9a-f]{64}$/) });
      const { id } = await strictLog(idp.server.database.db).append(event(1));
      // The running server's sealer takes it within a second or two; its lag, as a metric would read it, goes back to 0.
      await until(async () => ((await idp.server.audit.sealLag()) === 0 ? true : undefined), 'a seal lag of 0', 5_000);
      const { id: lastId } = await strictLog(idp.server.database.db).append(event(2));
      const before = heads().length;
      await idp.server.close();
      const last = heads().at(-1)!;
      expect(heads().length).toBeGreaterThan(before);
      // The shutdown line names the head after this process's last event was sealed.
      const reopened = await openDatabase<AuditTables>(storeOptionsOf(idp.store, 5));
      try {
        const head = await reopened.db.selectFrom('audit_seals').select(['seq', 'hash', 'event_id']).orderBy('seq', 'desc').limit(1).executeTakeFirstOrThrow();
        expect(id).toBeLessThan(lastId);
        expect(Number(head.event_id)).toBe(lastId);
        expect(last).toMatchObject({ id: Number(head.seq), hash: head.hash, anchor: `${head.seq}:${head.hash}` });
      } finally {
        await reopened.close();
      }
    } finally {
      await idp.stop();
    }
  });
});
