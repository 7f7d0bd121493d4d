import { CompiledQuery, type Kysely } from 'kysely';
import type { AuditEvent } from './events.ts';
import type { AuditRow } from './seal-queries.ts';
import { chainedEventOf, chainHeadOf, sealLagOf, sealPending, type ChainHead, type SealOptions } from './sealer.ts';
import type { AuditDetails, AuditTables } from './tables.ts';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Details keys that would invite a secret value; a programming error, refused before writing. */
export const SECRET_KEY = /password|secret|token|cookie|verifier|^code$|jwk|kek/i;
/** At most this many events in one INSERT; more wait for the next one. */
const MAX_GROUP = 500;

export type { AuditRow };

export class AuditWriteError extends Error {
  readonly code = 'ERR_AUDIT_WRITE';
}

/** Text as Postgres can store it (no NUL, no lone surrogates), bounded; empty is null. */
function text(value: string | undefined, max: number): string | null {
  if (value === undefined || value === '') return null;
  return value.replaceAll('\u0000', '').slice(0, max).replace(LONE_SURROGATE, '\uFFFD');
}

function cleanDetails(details: AuditDetails | undefined): AuditDetails {
  const clean: AuditDetails = {};
  for (const [key, value] of Object.entries(details ?? {})) {
    if (SECRET_KEY.test(key)) throw new AuditWriteError(`audit details may not carry "${key}"`);
    if (typeof value === 'string') clean[key] = text(value, 200);
    else if (typeof value === 'number') clean[key] = Number.isFinite(value) ? value : null;
    else clean[key] = value;
  }
  return clean;
}

export { chainedEventOf };

export interface AuditLog {
  /**
   * Writes one event; resolves with its id once the row is committed (durable before the response
   * that it describes), throws if it cannot. No lock: the chain is made later by the sealer.
   */
  append(event: AuditEvent): Promise<{ id: number }>;
  /**
   * Writes one event; never throws. A failed write goes to the error handler (the server logs it,
   * with the event) and the action it describes goes ahead: see docs/audit.md, "When a write fails".
   */
  record(event: AuditEvent): Promise<void>;
  /** Resolves once every write started so far has finished. */
  settled(): Promise<void>;
  /** Events this log has written (a CLI seals before it exits when it wrote any). */
  readonly written: number;
  /**
   * Seals committed unsealed events (from any process) until none is left or `options.waitMs` has
   * passed while another sealer held the lock; returns how many this call sealed.
   */
  seal(options?: SealOptions): Promise<number>;
  /** Age in seconds of the oldest unsealed event, 0 when none (`jobswipe_audit_seal_lag_seconds`). */
  sealLag(): Promise<number>;
  /** The chain's last seal: its position and hash (the anchor to keep), or undefined for an empty chain. */
  head(): Promise<ChainHead | undefined>;
}

type Row = {
  occurred_at: Date;
  event_type: string;
  outcome: string;
  user_id: string | null;
  client_id: string | null;
  session_id: string | null;
  ip: string | null;
  user_agent: string | null;
  details: string;
};

interface Pending {
  row: Row;
  resolve(value: { id: number }): void;
  reject(error: unknown): void;
}

function rowOf(event: AuditEvent): Row {
  const userId = event.userId?.toLowerCase();
  return {
    occurred_at: new Date(),
    event_type: event.type,
    outcome: event.outcome,
    // Only a uuid identifies a user here: anything else (an email by mistake) is not written.
    user_id: userId !== undefined && UUID.test(userId) ? userId : null,
    client_id: text(event.clientId, 200),
    session_id: text(event.sessionId, 200),
    ip: text(event.ip, 100),
    user_agent: text(event.userAgent, 512),
    details: JSON.stringify(cleanDetails(event.details)),
  };
}

/**
 * A group of events in one statement whose text never changes, whatever the group's size: one array
 * parameter per column (unnest keeps their order, and the sequence numbers the rows in that order),
 * so nothing is built or parsed per request but the values. A lone event (a quiet server) takes the
 * plain VALUES form, which Postgres plans for less than the unnest.
 */
const INSERT_GROUP = `
  INSERT INTO audit_events (occurred_at, event_type, outcome, user_id, client_id, session_id, ip, user_agent, details)
  SELECT occurred_at, event_type, outcome, user_id, client_id, session_id, ip, user_agent, details::jsonb
  FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
    AS e(occurred_at, event_type, outcome, user_id, client_id, session_id, ip, user_agent, details)
  RETURNING id`;
const INSERT_ONE = `
  INSERT INTO audit_events (occurred_at, event_type, outcome, user_id, client_id, session_id, ip, user_agent, details)
  VALUES ($1::timestamptz, $2, $3, $4::uuid, $5, $6, $7, $8, $9::jsonb)
  RETURNING id`;

/** The statement for a group, and its parameters. */
function insertOf(rows: Row[]): CompiledQuery {
  if (rows.length === 1) {
    const row = rows[0]!;
    return CompiledQuery.raw(INSERT_ONE, [
      row.occurred_at.toISOString(),
      row.event_type,
      row.outcome,
      row.user_id,
      row.client_id,
      row.session_id,
      row.ip,
      row.user_agent,
      row.details,
    ]);
  }
  return CompiledQuery.raw(INSERT_GROUP, groupParameters(rows));
}

/** The statement's parameters: a group's rows, column by column. */
function groupParameters(rows: Row[]): unknown[][] {
  const columns: unknown[][] = [[], [], [], [], [], [], [], [], []];
  for (const row of rows) {
    columns[0]!.push(row.occurred_at.toISOString());
    columns[1]!.push(row.event_type);
    columns[2]!.push(row.outcome);
    columns[3]!.push(row.user_id);
    columns[4]!.push(row.client_id);
    columns[5]!.push(row.session_id);
    columns[6]!.push(row.ip);
    columns[7]!.push(row.user_agent);
    columns[8]!.push(row.details);
  }
  return columns;
}

export function createAuditLog(db: Kysely<AuditTables>, onError: (error: unknown, event: AuditEvent) => void): AuditLog {
  // Group commit: one INSERT in flight at a time; events that arrive meanwhile go together in the next.
  // (More at once would cost Postgres a commit each for smaller groups: more CPU per event, no faster.)
  let queue: Pending[] = [];
  let flushing: Promise<void> = Promise.resolve();
  let running = false;
  let written = 0;

  async function insert(group: Pending[]): Promise<void> {
    const { rows } = await db.executeQuery<{ id: string | number | bigint }>(insertOf(group.map((pending) => pending.row)));
    // One statement, so one commit: every row is durable when it returns. Ids come from the sequence
    // in the order of the values, and RETURNING gives them back in that order.
    written += rows.length;
    group.forEach((pending, index) => pending.resolve({ id: Number(rows[index]!.id) }));
  }

  /** Inserts queued groups until the queue is empty. */
  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        const group = queue.slice(0, MAX_GROUP);
        queue = queue.slice(group.length);
        try {
          await insert(group);
        } catch (error) {
          if (group.length === 1) {
            group[0]!.reject(error);
            continue;
          }
          // One bad row must not lose the others: each on its own, so only the culprit fails.
          await Promise.all(group.map((pending) => insert([pending]).catch((cause: unknown) => pending.reject(cause))));
        }
      }
    } finally {
      // In the same turn as the last look at the queue: an append after this starts a new drain.
      running = false;
    }
  }

  function append(event: AuditEvent): Promise<{ id: number }> {
    let row: Row;
    try {
      row = rowOf(event);
    } catch (error) {
      return Promise.reject(error);
    }
    const done = new Promise<{ id: number }>((resolve, reject) => queue.push({ row, resolve, reject }));
    if (!running) {
      running = true;
      flushing = drain();
    }
    return done;
  }

  return {
    append,
    async record(event) {
      try {
        await append(event);
      } catch (error) {
        onError(error, event);
      }
    },
    async settled() {
      while (running) await flushing;
    },
    get written() {
      return written;
    },
    seal: (options) => sealPending(db, options),
    sealLag: () => sealLagOf(db),
    head: () => chainHeadOf(db),
  };
}
