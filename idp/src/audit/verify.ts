import type { Kysely } from 'kysely';
import { chainHash, GENESIS_HASH } from './chain.ts';
import { sealsFrom, unsealedTail } from './seal-queries.ts';
import { chainedEventOf } from './sealer.ts';
import type { AuditTables } from './tables.ts';

/** A chain head kept outside the database: its position and hash (`ID:HASH`). */
export interface Anchor {
  id: number;
  hash: string;
}

const ANCHOR = /^([1-9][0-9]{0,15}):([0-9a-f]{64})$/;

/** `ID:HASH` as `audit verify` and the "audit chain head" log line print it; undefined if malformed. */
export function parseAnchor(text: string): Anchor | undefined {
  const match = ANCHOR.exec(text.trim().toLowerCase());
  if (!match) return undefined;
  const id = Number(match[1]);
  return Number.isSafeInteger(id) ? { id, hash: match[2]! } : undefined;
}

export interface UnsealedTail {
  /** Events written but not sealed yet (the sealer chains them within a second or two). */
  count: number;
  /** When the oldest of them was written. */
  oldest: Date | undefined;
}

export type ChainReport =
  | { intact: true; count: number; head: { id: number; hash: string } | undefined; unsealed: UnsealedTail; anchor?: Anchor }
  /**
   * `id` is the chain position (seal) of the first problem; `count` the seals before it that are
   * intact. `anchor: true` when the chain is consistent but does not contain the kept head.
   */
  | { intact: false; count: number; id: number; problem: string; anchor?: boolean; unsealed: UnsealedTail };

const BATCH = 1000;

const after = (seq: number) => (seq === 0 ? 'the start of the chain' : `seal ${seq}`);

/**
 * Walks the sealed chain from position 1: every position follows the previous one, every prev_hash is
 * the previous seal's hash, every sealed event exists and matches its seal's hash, and, given an
 * anchor, the seal at its position has its hash. Stops at the first problem. Also counts the events
 * not sealed yet (a full scan: it does not rely on the sealer's horizons).
 */
export async function verifyChain(db: Kysely<AuditTables>, anchor?: Anchor): Promise<ChainReport> {
  const unsealed = await unsealedTail(db);
  let expected = 1;
  let prevHash = GENESIS_HASH;
  const broken = (id: number, problem: string) => ({ intact: false as const, count: expected - 1, id, problem, unsealed });
  for (;;) {
    const rows = await sealsFrom(db, expected, BATCH);
    for (const seal of rows) {
      const seq = Number(seal.seq);
      const checked = expected - 1;
      if (seq !== expected) {
        const missing = seq === expected + 1 ? `audit seal ${expected} is missing` : `audit seals ${expected} to ${seq - 1} are missing`;
        return broken(expected, `${missing} (seal ${seq} follows ${after(checked)})`);
      }
      if (seal.prev_hash !== prevHash) {
        return broken(seq, `audit seal ${seq} does not follow ${after(checked)}: its prev_hash is not that seal's hash (one of the two was changed)`);
      }
      if (!seal.event) return broken(seq, `audit event ${String(seal.event_id)} (sealed at position ${seq}) is missing`);
      if (chainHash(prevHash, chainedEventOf(seal.event)) !== seal.hash) {
        return broken(seq, `audit event ${String(seal.event_id)} (sealed at position ${seq}) was changed: its fields do not match its seal's hash`);
      }
      if (anchor && seq === anchor.id && seal.hash !== anchor.hash) {
        return {
          ...broken(seq, `the chain does not contain the anchor ${anchor.id}:${anchor.hash}: seal ${seq} has hash ${seal.hash} (the chain was rewritten at or before it)`),
          anchor: true,
        };
      }
      prevHash = seal.hash;
      expected += 1;
    }
    if (rows.length < BATCH) break;
  }
  const count = expected - 1;
  if (anchor && anchor.id > count) {
    return {
      ...broken(anchor.id, `the chain does not contain the anchor ${anchor.id}:${anchor.hash}: it ends at seal ${count} (seals were removed)`),
      anchor: true,
    };
  }
  return { intact: true, count, head: count > 0 ? { id: count, hash: prevHash } : undefined, unsealed, ...(anchor ? { anchor } : {}) };
}
