import type { Kysely } from 'kysely';
import type { AuditRow } from './seal-queries.ts';
import type { AuditTables } from './tables.ts';

export interface AuditFilter {
  /** Only events that occurred after this instant. */
  after?: Date | undefined;
  type?: string | undefined;
  /** A user's uuid. */
  user?: string | undefined;
  /** The id of the last event of the previous page. */
  afterId?: number | undefined;
  limit: number;
}

/**
 * Audit events in id order, filtered (GET /admin/api/audit): written ones, sealed or not yet. The
 * indexes on (user_id, id) and (event_type, id) serve the filters.
 */
export function createAuditSearch(db: Kysely<AuditTables>) {
  return {
    async search(filter: AuditFilter): Promise<AuditRow[]> {
      let query = db.selectFrom('audit_events').selectAll().orderBy('id').limit(filter.limit);
      if (filter.after !== undefined) query = query.where('occurred_at', '>', filter.after);
      if (filter.type !== undefined) query = query.where('event_type', '=', filter.type);
      if (filter.user !== undefined) query = query.where('user_id', '=', filter.user);
      if (filter.afterId !== undefined) query = query.where('id', '>', String(filter.afterId) as never);
      return query.execute();
    },
  };
}

export type AuditSearch = ReturnType<typeof createAuditSearch>;
