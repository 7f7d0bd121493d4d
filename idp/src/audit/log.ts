import { sql, type Kysely, type Selectable } from 'kysely';
import { chainHash, GENESIS_HASH, type ChainedEvent } from './chain.ts';
import type { AuditEvent } from './events.ts';
import type { AuditDetails, AuditEventsTable, AuditTables } from './tables.ts';

/**
 * Serializes appends across every process and connection (servers, the CLI): each writer reads the
 * chain's last row and adds the next one while holding this transaction-scoped advisory lock. It
 * needs no table rights beyond INSERT and SELECT (LOCK TABLE would need UPDATE).
 */
export const AUDIT_CHAIN_LOCK = 0x4a5341756469; // "JSAudi"

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** Details keys that would invite a secret value; a programming error, refused before writing. */
const SECRET_KEY = /password|secret|token|cookie|verifier|^code$|jwk|kek/i;

export type AuditRow = Selectable<AuditEventsTable>;

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

export interface AuditLog {
  /** Appends one event to the chain; throws if it cannot. */
  append(event: AuditEvent): Promise<{ id: number; hash: string }>;
  /**
   * Appends one event; never throws. A failed write goes to the error handler (the server logs it,
   * with the event) and the action it describes goes ahead: see docs/audit.md, "When a write fails".
   */
  record(event: AuditEvent): Promise<void>;
}

export function createAuditLog(db: Kysely<AuditTables>, onError: (error: unknown, event: AuditEvent) => void): AuditLog {
  async function append(event: AuditEvent): Promise<{ id: number; hash: string }> {
    const userId = event.userId?.toLowerCase();
    const fields = {
      type: event.type,
      outcome: event.outcome,
      // Only a uuid identifies a user here: anything else (an email by mistake) is not written.
      userId: userId !== undefined && UUID.test(userId) ? userId : null,
      clientId: text(event.clientId, 200),
      sessionId: text(event.sessionId, 200),
      ip: text(event.ip, 100),
      userAgent: text(event.userAgent, 512),
      details: cleanDetails(event.details),
    };
    return db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(${sql.lit(AUDIT_CHAIN_LOCK)})`.execute(trx);
      const last = await trx.selectFrom('audit_events').select(['id', 'hash']).orderBy('id', 'desc').limit(1).executeTakeFirst();
      const chained: ChainedEvent = {
        ...fields,
        id: last ? Number(last.id) + 1 : 1,
        // Taken under the lock, so times never run backwards along the chain on one clock.
        occurredAt: new Date(),
      };
      const prevHash = last?.hash ?? GENESIS_HASH;
      const hash = chainHash(prevHash, chained);
      await trx
        .insertInto('audit_events')
        .values({
          id: chained.id,
          occurred_at: chained.occurredAt,
          event_type: chained.type,
          outcome: chained.outcome,
          user_id: chained.userId,
          client_id: chained.clientId,
          session_id: chained.sessionId,
          ip: chained.ip,
          user_agent: chained.userAgent,
          details: JSON.stringify(chained.details),
          prev_hash: prevHash,
          hash,
        })
        .execute();
      return { id: chained.id, hash };
    });
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
  };
}
