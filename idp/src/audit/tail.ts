import type { Kysely } from 'kysely';
import { latestSealedEvents, sealedEventsAfter, type AuditRow } from './seal-queries.ts';
import type { AuditTables } from './tables.ts';

export interface TailedEvent {
  /** Chain position: followed in this order, so an event that commits late is not skipped. */
  seq: number;
  event: AuditRow;
}

/** The newest `count` sealed events, oldest first. */
export async function latestEvents(db: Kysely<AuditTables>, count: number): Promise<TailedEvent[]> {
  return count === 0 ? [] : latestSealedEvents(db, count);
}

/** Events sealed after chain position `seq`, in chain order (at most `limit`). */
export async function eventsAfter(db: Kysely<AuditTables>, seq: number, limit = 500): Promise<TailedEvent[]> {
  return sealedEventsAfter(db, seq, limit);
}

const dash = (value: string | null) => (value === null || value === '' ? '-' : value);

/** One line per event: id, time, type, outcome, then key=value fields (agent and details as JSON). */
export function formatEvent(row: AuditRow): string {
  return [
    String(row.id),
    row.occurred_at.toISOString(),
    row.event_type,
    row.outcome,
    `user=${dash(row.user_id)}`,
    `client=${dash(row.client_id)}`,
    `session=${dash(row.session_id)}`,
    `ip=${dash(row.ip)}`,
    `agent=${JSON.stringify(row.user_agent ?? '')}`,
    `details=${JSON.stringify(row.details)}`,
  ].join('  ');
}
