import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '@jobswipe/adapters';
import { cli } from '../../../test/support/cli.ts';
import { createTestStore, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { chainHash, GENESIS_HASH } from '../../src/audit/chain.ts';
import { chainedEventOf } from '../../src/audit/log.ts';
import type { AuditTables } from '../../src/audit/tables.ts';
import { verifyChain } from '../../src/audit/verify.ts';


// `idp audit verify` on Postgres with no server running: the CLI opens the store itself.
describe('idp audit verify --anchor (postgres, no server)', { timeout: 120_000 }, () => {
  let store: TestStore;
  let owner: Database<AuditTables>;
  let env: Record<string, string>;
  const { run: idp, fails } = cli(() => env);

  beforeAll(async () => {
    store = await createTestStore('postgres');
    env = { ...storeEnvironment(store), ISSUER: 'http://localhost:4999' };
    const migrated = await idp(['migrate']);
    expect(migrated.code, migrated.stderr).toBe(0);
    if (store.kind !== 'postgres') throw new Error('postgres only');
    owner = await openDatabase<AuditTables>({ kind: 'postgres', url: store.url, poolMax: 2 });
  });

  afterAll(async () => {
    await owner?.close();
    await store?.drop();
  });

  let anchor = '';

  it('seals the events a command wrote before it exits, and prints the head to keep', async () => {
    const rotated = await idp(['keys', 'rotate']);
    expect(rotated.code, rotated.stderr).toBe(0);
    // No server runs: only the command itself can have sealed them.
    const report = await verifyChain(owner.db);
    expect(report).toMatchObject({ intact: true, unsealed: { count: 0 } });
    expect(report.intact && report.count).toBeGreaterThanOrEqual(2);

    const result = await idp(['audit', 'verify']);
    expect(result.err).toEqual([]);
    expect(result.code).toBe(0);
    expect(result.out).toEqual([expect.stringMatching(/^audit chain intact: \d+ sealed events? \(head \d+:[0-9a-f]{64}\)$/), 'unsealed tail: none']);
    anchor = /\(head (\d+:[0-9a-f]{64})\)/.exec(result.out[0]!)![1]!;
    expect(anchor).toBe(report.intact ? `${report.head!.id}:${report.head!.hash}` : '');

    const anchored = await idp(['audit', 'verify', '--anchor', anchor]);
    expect(anchored.code, anchored.stderr).toBe(0);
    expect(anchored.out.at(-1)).toBe(`anchor ${anchor} is in the chain`);
  });

  it('refuses a malformed anchor with a usage error', async () => {
    for (const bad of ['nonsense', `0:${'a'.repeat(64)}`, `3:${'g'.repeat(64)}`]) {
      expect(await fails(['audit', 'verify', '--anchor', bad], 2)).toMatch(/^idp audit verify: --anchor must be ID:HASH, .* \(usage: idp audit verify \[--anchor ID:HASH\]\)$/);
    }
  });

  it('reports an unsealed tail with its age', async () => {
    await sql`insert into audit_events (occurred_at, event_type, outcome) values (now() - interval '3 seconds', 'login.failure', 'failure')`.execute(owner.db);
    const result = await idp(['audit', 'verify', '--anchor', anchor]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.out[1]).toMatch(/^unsealed tail: 1 event\(s\), the oldest written \d+\.\d s ago$/);
    expect(Number(/written (\S+) s/.exec(result.out[1]!)![1])).toBeGreaterThanOrEqual(3);
  });

  it('a chain rewritten by the owner and recomputed is intact without the anchor, broken with it', async () => {
    await owner.db.transaction().execute(async (trx) => {
      await sql`alter table audit_events disable trigger audit_events_append_only`.execute(trx);
      await sql`alter table audit_seals disable trigger audit_seals_append_only`.execute(trx);
      const first = await trx.selectFrom('audit_seals').select('event_id').where('seq', '=', 1).executeTakeFirstOrThrow();
      await sql`update audit_events set details = '{"by": "nobody"}' where id = ${first.event_id}`.execute(trx);
      let prev = GENESIS_HASH;
      for (const seal of await trx.selectFrom('audit_seals').selectAll().orderBy('seq').execute()) {
        const event = await trx.selectFrom('audit_events').selectAll().where('id', '=', Number(seal.event_id)).executeTakeFirstOrThrow();
        const hash = chainHash(prev, chainedEventOf(event));
        await sql`update audit_seals set prev_hash = ${prev}, hash = ${hash} where seq = ${seal.seq}`.execute(trx);
        prev = hash;
      }
      await sql`alter table audit_events enable trigger audit_events_append_only`.execute(trx);
      await sql`alter table audit_seals enable trigger audit_seals_append_only`.execute(trx);
    });
    const unanchored = await idp(['audit', 'verify']);
    expect(unanchored.code, unanchored.stderr).toBe(0);
    expect(unanchored.out[0]).toMatch(/^audit chain intact: /);

    const [id] = anchor.split(':');
    expect(await fails(['audit', 'verify', '--anchor', anchor], 1)).toMatch(
      new RegExp(`^idp audit verify: the chain does not contain the anchor ${anchor}: seal ${id} has hash [0-9a-f]{64} \\(the chain was rewritten at or before it\\)$`),
    );
    expect(await fails(['audit', 'verify', '--anchor', `999:${'a'.repeat(64)}`], 1)).toMatch(/^idp audit verify: the chain does not contain the anchor 999:a{64}: it ends at seal \d+ \(seals were removed\)$/);
  });
});
