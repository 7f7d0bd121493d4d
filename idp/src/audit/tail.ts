import type { Kysely } from 'kysely';
import type { AuditRow } from './log.ts';
import type { AuditTables } from './tables.ts';

/** The newest `count` events, oldest first. */
export async function latestEvents(db: Kysely<AuditTables>, count: number): Promise<AuditRow[]> {
  const rows = await db.selectFrom('audit_events').selectAll().orderBy('id', 'desc').limit(count).execute();
  return rows.reverse();
}

/** Events after the given id, in order (at most `limit`). */
export async function eventsAfter(db: Kysely<AuditTables>, id: number, limit = 500): Promise<AuditRow[]> {
  return db.selectFrom('audit_events').selectAll().where('id', '>', id).orderBy('id').limit(limit).execute();
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
