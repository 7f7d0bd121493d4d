import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Logger } from '../logger.ts';
import { chainHash, GENESIS_HASH, type ChainedEvent } from './chain.ts';
import {
  chainHead,
  currentSnapshot,
  insertSeals,
  latestHorizon,
  oldestUnsealedAge,
  trySealerLock,
  unsealedEvents,
  type AuditRow,
  type NewSeal,
} from './seal-queries.ts';
import type { AuditTables } from './tables.ts';

/** At most this many seals per transaction. */
export const SEAL_BATCH = 1000;

export interface ChainHead {
  /** The chain position (seal seq). */
  id: number;
  hash: string;
  /** The event sealed there. */
  eventId: number;
}

export interface SealOptions {
  /** How long to keep trying while another sealer holds the lock (0: one try). */
  waitMs?: number;
  /** Seals per transaction (tests use small batches). */
  batch?: number;
}

/** A stored row as the chain sees it. */
export function chainedEventOf(row: AuditRow): ChainedEvent {
  return {
    id: Number(row.id),
    occurredAt: row.occurred_at,
    type: row.event_type,
    outcome: row.outcome,
    userId: row.user_id,
    clientId: row.client_id,
    sessionId: row.session_id,
    ip: row.ip,
    userAgent: row.user_agent,
    details: row.details,
  };
}

type BatchResult = { locked: false } | { locked: true; sealed: number; complete: boolean; lastId: number | undefined };

/**
 * One sealing transaction: takes the sealer lock if free (else does nothing), then chains up to
 * `limit` committed unsealed events, in id order, after the current head. A batch that sealed every
 * event the horizon's window showed records the snapshot taken before the lookup as the new horizon.
 * With `afterId` (the rest of a backlog), it looks past that id first.
 */
async function sealBatch(db: Kysely<AuditTables>, limit: number, afterId: number | undefined): Promise<BatchResult> {
  return db.transaction().execute(async (trx) => {
    if (!(await trySealerLock(trx))) return { locked: false };
    // After the lock: a sealer that committed just before is visible (READ COMMITTED, one snapshot per statement).
    const head = await chainHead(trx);
    const horizon = await latestHorizon(trx);
    // Taken before the lookup: every event committed before it is seen by the lookup.
    const snapshot = await currentSnapshot(trx);
    // One more than the batch, to know whether this batch takes all there is.
    let found = await unsealedEvents(trx, horizon, limit + 1, afterId);
    let complete = found.length <= limit;
    if (complete && afterId !== undefined) {
      // The end of a backlog: late commits below the cursor join this batch, which then covers the
      // whole window (and records the horizon) if they fit.
      const below = await unsealedEvents(trx, horizon, limit + 1 - found.length, undefined, afterId);
      found = [...below, ...found];
      complete = found.length <= limit;
    }
    if (found.length === 0) return { locked: true, sealed: 0, complete: true, lastId: undefined };
    const events = complete ? found : found.slice(0, limit);
    const recordHorizon = complete;
    let seq = head ? Number(head.seq) : 0;
    let prevHash = head?.hash ?? GENESIS_HASH;
    const seals: NewSeal[] = events.map((row, index) => {
      const hash = chainHash(prevHash, chainedEventOf(row));
      seq += 1;
      const seal = { seq, event_id: Number(row.id), prev_hash: prevHash, hash, horizon: recordHorizon && index === events.length - 1 ? snapshot : null };
      prevHash = hash;
      return seal;
    });
    await insertSeals(trx, seals);
    return { locked: true, sealed: seals.length, complete, lastId: Number(events.at(-1)!.id) };
  });
}

/**
 * Seals until nothing committed is left unsealed; see AuditLog.seal. A backlog goes in batches that
 * each look past the previous one's last id (cheap on a big window); the last one also takes the
 * late commits below those ids and records the horizon.
 */
export async function sealPending(db: Kysely<AuditTables>, options: SealOptions = {}): Promise<number> {
  const limit = options.batch ?? SEAL_BATCH;
  const deadline = Date.now() + (options.waitMs ?? 0);
  let sealed = 0;
  let afterId: number | undefined;
  for (;;) {
    const result = await sealBatch(db, limit, afterId);
    if (result.locked) {
      sealed += result.sealed;
      if (result.complete) return sealed;
      afterId = result.lastId;
    } else {
      if (Date.now() >= deadline) return sealed;
      await sleep(50);
    }
  }
}

export async function chainHeadOf(db: Kysely<AuditTables>): Promise<ChainHead | undefined> {
  const head = await chainHead(db);
  return head ? { id: Number(head.seq), hash: head.hash, eventId: Number(head.event_id) } : undefined;
}

export async function sealLagOf(db: Kysely<AuditTables>): Promise<number> {
  return oldestUnsealedAge(db, await latestHorizon(db));
}

export interface SealingOptions {
  /** Pause between passes: a random time in this range, so processes do not all try at once. */
  intervalMs?: [number, number];
  /** How often the chain head is logged. */
  headIntervalMs?: number;
}

interface Sealable {
  seal(options?: SealOptions): Promise<number>;
  head(): Promise<ChainHead | undefined>;
  settled(): Promise<void>;
}

/**
 * What every server process runs: a sealing pass every 250-500 ms (only one process at a time gets
 * the lock; the others skip), and the chain head in the log every minute and on stop, where the
 * database cannot reach it. stop() lets writes under way finish, seals them, and logs the head.
 */
export function startSealing(audit: Sealable, log: Logger, options: SealingOptions = {}): { stop(): Promise<void> } {
  const [min, max] = options.intervalMs ?? [250, 500];
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let passing: Promise<void> = Promise.resolve();

  const pass = async () => {
    try {
      await audit.seal();
    } catch (error) {
      log.warn({ err: error }, 'audit sealing pass failed');
    }
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      passing = pass().finally(schedule);
    }, min + Math.random() * (max - min));
    timer.unref();
  };

  const logHead = async () => {
    try {
      const head = await audit.head();
      if (head) log.info({ id: head.id, hash: head.hash, anchor: `${head.id}:${head.hash}` }, 'audit chain head');
    } catch (error) {
      log.warn({ err: error }, 'audit chain head unavailable');
    }
  };
  const headTimer = setInterval(() => void logHead(), options.headIntervalMs ?? 60_000);
  headTimer.unref();
  schedule();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      clearInterval(headTimer);
      await passing;
      await audit.settled();
      // The last events of this process: sealed now if no other sealer is at work (else it will be).
      try {
        await audit.seal({ waitMs: 1_000 });
      } catch (error) {
        log.warn({ err: error }, 'audit sealing pass failed');
      }
      await logHead();
    },
  };
}
