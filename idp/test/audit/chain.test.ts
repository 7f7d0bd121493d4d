import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database, type StoreOptions } from '@jobswipe/adapters';
import { migrateToLatest } from '@jobswipe/migrations';
import { runToExit, spawnNode, type Running } from '../../../test/support/processes.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { createTestStore, STORE_KINDS, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { chainHash } from '../../src/audit/chain.ts';
import type { AuditEvent } from '../../src/audit/events.ts';
import { chainedEventOf, createAuditLog, type AuditLog } from '../../src/audit/log.ts';
import type { AuditTables } from '../../src/audit/tables.ts';
import { verifyChain } from '../../src/audit/verify.ts';

const CLI_ENTRY = 'idp/src/cli/main.ts';
const USER = '0b5e4c0e-3f55-4a4e-9d7e-6c1f1c2b9a01';

function storeOptions(store: TestStore): StoreOptions {
  return store.kind === 'postgres' ? { kind: 'postgres', url: store.url, poolMax: 5 } : { kind: 'embedded', dataDir: store.dataDir };
}

function event(n: number): AuditEvent {
  return { type: 'login.failure', outcome: 'failure', userId: USER, clientId: 'web', ip: `198.51.100.${n % 250}`, userAgent: 'chain test', details: { reason: 'wrong_password', n } };
}

const strictLog = (db: Kysely<AuditTables>): AuditLog =>
  createAuditLog(db, (error) => {
    throw error;
  });

async function until<T>(check: () => T | undefined | Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe.each(STORE_KINDS)('audit chain and its guards (%s store)', (kind) => {
  let store: TestStore;
  let database: Database<AuditTables>;
  let db: Kysely<AuditTables>;

  beforeAll(async () => {
    store = await createTestStore(kind);
    // The owner, as migrations and an attacker with the owner's password would connect.
    database = await openDatabase<AuditTables>(storeOptions(store));
    db = database.db;
    await migrateToLatest(db);
  });

  afterAll(async () => {
    await database?.close();
    await store?.drop();
  });

  /** Runs one statement as the server's role, inside a transaction rolled back afterwards. */
  async function asServerRole(statement: string): Promise<string> {
    const rolledBack = new Error('rolled back');
    try {
      await db.transaction().execute(async (trx) => {
        await sql`set local role jobswipe_system`.execute(trx);
        await sql.raw(statement).execute(trx);
        throw rolledBack;
      });
    } catch (error) {
      return error === rolledBack ? 'allowed' : (error as Error).message;
    }
    return 'allowed';
  }

  async function disabledTriggers<T>(fn: () => Promise<T>): Promise<T> {
    await sql`alter table audit_events disable trigger audit_events_append_only`.execute(db);
    try {
      return await fn();
    } finally {
      await sql`alter table audit_events enable trigger audit_events_append_only`.execute(db);
    }
  }

  it('keeps one linear chain when writers on several connections append at once', async () => {
    // Two pools on Postgres stand for two server processes; the embedded store has one connection.
    const other = kind === 'postgres' ? await openDatabase<AuditTables>(storeOptions(store)) : undefined;
    try {
      const logs = [strictLog(db), strictLog(other?.db ?? db)];
      const results = await Promise.all(Array.from({ length: 40 }, (_, n) => logs[n % 2]!.append(event(n))));
      expect(results.map((result) => result.id).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, n) => n + 1));
    } finally {
      await other?.close();
    }
    const rows = await db.selectFrom('audit_events').select(['id', 'prev_hash', 'hash']).orderBy('id').execute();
    expect(rows).toHaveLength(40);
    // Each row's predecessor is the row before it: no two rows share one, nothing branches.
    rows.forEach((row, index) => index > 0 && expect(row.prev_hash).toBe(rows[index - 1]!.hash));
    expect(await verifyChain(db)).toEqual({ intact: true, count: 40, head: { id: 40, hash: rows[39]!.hash } });
  });

  it('lets the server role insert and read audit rows, but not change or delete them', async () => {
    expect(await asServerRole('select count(*) from audit_events')).toBe('allowed');
    expect(
      await asServerRole(
        `insert into audit_events (id, occurred_at, event_type, outcome, prev_hash, hash) values (1000, now(), 'login.success', 'success', '${'a'.repeat(64)}', '${'b'.repeat(64)}')`,
      ),
    ).toBe('allowed');
    // Refused by the missing grants, before the trigger is reached.
    for (const statement of ["update audit_events set outcome = 'success' where id = 1", 'delete from audit_events where id = 40', 'truncate audit_events']) {
      expect(await asServerRole(statement), statement).toMatch(/permission denied for table audit_events/);
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 40 });
  });

  it('refuses UPDATE, DELETE and TRUNCATE even to the owner while the triggers are on', async () => {
    for (const statement of ["update audit_events set outcome = 'success' where id = 1", 'delete from audit_events where id = 40', 'truncate audit_events']) {
      await expect(sql.raw(statement).execute(db), statement).rejects.toThrow(/audit_events is append-only: (UPDATE|DELETE|TRUNCATE) refused/);
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 40 });
  });

  it('names a changed row, a rewritten row and a deleted row; an intact chain again once repaired', async () => {
    const original = await db.selectFrom('audit_events').selectAll().where('id', '=', 7).executeTakeFirstOrThrow();

    await disabledTriggers(() => sql`update audit_events set ip = '192.0.2.99' where id = 7`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 7, count: 6, problem: 'audit event 7 was changed: its fields do not match its hash' });

    // Changed with a recomputed hash: the next row no longer follows it.
    const forged = chainHash(original.prev_hash, { ...chainedEventOf(original), ip: '192.0.2.99' });
    await disabledTriggers(() => sql`update audit_events set hash = ${forged} where id = 7`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 8, problem: expect.stringMatching(/^audit event 8 does not follow event 7/) });

    await disabledTriggers(() => sql`update audit_events set ip = ${original.ip}, hash = ${original.hash} where id = 7`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 40 });

    const deleted = await db.selectFrom('audit_events').selectAll().where('id', 'in', [1, 12]).orderBy('id').execute();
    await disabledTriggers(() => sql`delete from audit_events where id = 12`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 12, count: 11, problem: 'audit event 12 is missing (event 13 follows event 11)' });
    await disabledTriggers(() => sql`delete from audit_events where id = 1`.execute(db));
    expect(await verifyChain(db)).toMatchObject({ intact: false, id: 1, count: 0, problem: 'audit event 1 is missing (event 2 follows the start of the chain)' });

    // The same rows put back: every byte the hashes cover survives the round trip through the store.
    for (const row of deleted) {
      await sql`insert into audit_events values (${row.id}, ${row.occurred_at}, ${row.event_type}, ${row.outcome}, ${row.user_id}, ${row.client_id}, ${row.session_id}, ${row.ip}, ${row.user_agent}, ${JSON.stringify(row.details)}, ${row.prev_hash}, ${row.hash})`.execute(db);
    }
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 40 });
  });

  it('refuses details that would carry a secret, and stores only uuids as user ids', async () => {
    const log = strictLog(db);
    await expect(log.append({ type: 'login.failure', outcome: 'failure', details: { password: 'hunter2hunter2' } })).rejects.toThrow(/may not carry "password"/);
    await expect(log.append({ type: 'token.issued', outcome: 'success', details: { refresh_token: 'x' } })).rejects.toThrow(/may not carry/);
    const { id } = await log.append({ type: 'login.failure', outcome: 'failure', userId: 'alice@example.com', userAgent: 'nul\u0000 and \ud800 lone' });
    const row = await db.selectFrom('audit_events').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.user_id).toBeNull();
    expect(row.user_agent).toBe('nul and \ufffd lone');
    expect(await verifyChain(db)).toMatchObject({ intact: true, count: 41 });
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

  it('prints the newest events, then follows new ones', async () => {
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
    const intact = await cli(['audit', 'verify']);
    expect(intact.err).toEqual([]);
    expect(intact.code).toBe(0);
    const count = (await rows()).length;
    expect(intact.out).toEqual([expect.stringMatching(new RegExp(`^audit chain intact: ${count} events \\(last: ${count} [0-9a-f]{64}\\)$`))]);

    // The owner changes a row behind the server's back (the embedded store: once the server has stopped).
    const tamper = 'alter table audit_events disable trigger audit_events_append_only; update audit_events set outcome = \'failure\' where id = 2;';
    if (idp.store.kind === 'postgres') {
      const owner = new pg.Client({ connectionString: idp.store.url });
      await owner.connect();
      await owner.query(tamper).finally(() => owner.end());
    } else {
      await idp.server.close();
      const owner = await openDatabase(storeOptions(idp.store));
      await sql.raw(tamper).execute(owner.db).finally(() => owner.close());
    }
    const broken = await cli(['audit', 'verify']);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toBe('');
    expect(broken.err).toEqual([`idp audit verify: audit chain broken at event 2: audit event 2 was changed: its fields do not match its hash (1 event(s) before it are intact)`]);
  });
});
