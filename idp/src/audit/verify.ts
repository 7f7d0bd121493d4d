import type { Kysely } from 'kysely';
import { chainHash, GENESIS_HASH } from './chain.ts';
import { chainedEventOf } from './log.ts';
import type { AuditTables } from './tables.ts';

export type ChainReport =
  | { intact: true; count: number; head: { id: number; hash: string } | undefined }
  /** `id` is the first row that is missing, changed or out of place; `problem` says which. */
  | { intact: false; count: number; id: number; problem: string };

const BATCH = 1000;

/**
 * Walks the chain from event 1 in id order: every id follows the previous one, every prev_hash is
 * the previous row's hash, and every hash matches its row. Stops at the first problem.
 */
export async function verifyChain(db: Kysely<AuditTables>): Promise<ChainReport> {
  let expected = 1;
  let prevHash = GENESIS_HASH;
  for (;;) {
    const rows = await db.selectFrom('audit_events').selectAll().where('id', '>=', expected).orderBy('id').limit(BATCH).execute();
    for (const row of rows) {
      const event = chainedEventOf(row);
      const checked = expected - 1;
      if (event.id !== expected) {
        const missing = event.id === expected + 1 ? `audit event ${expected} is missing` : `audit events ${expected} to ${event.id - 1} are missing`;
        return { intact: false, count: checked, id: expected, problem: `${missing} (event ${event.id} follows ${checked === 0 ? 'the start of the chain' : `event ${checked}`})` };
      }
      if (row.prev_hash !== prevHash) {
        return {
          intact: false,
          count: checked,
          id: event.id,
          problem: `audit event ${event.id} does not follow ${checked === 0 ? 'the start of the chain' : `event ${checked}`}: its prev_hash is not that event's hash (one of the two was changed)`,
        };
      }
      if (chainHash(prevHash, event) !== row.hash) {
        return { intact: false, count: checked, id: event.id, problem: `audit event ${event.id} was changed: its fields do not match its hash` };
      }
      prevHash = row.hash;
      expected += 1;
    }
    if (rows.length < BATCH) break;
  }
  return { intact: true, count: expected - 1, head: expected > 1 ? { id: expected - 1, hash: prevHash } : undefined };
}
