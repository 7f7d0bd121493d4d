import { sql, type Kysely, type Selectable } from 'kysely';
import type { AuditEventsTable, AuditSealsTable, AuditTables } from './tables.ts';

export type AuditRow = Selectable<AuditEventsTable>;
export type SealRow = Selectable<AuditSealsTable>;

/**
 * Taken with pg_try_advisory_xact_lock inside a sealing transaction, never waited on: one sealer at a
 * time across every process and connection. No writer takes it.
 */
export const AUDIT_SEALER_LOCK = 0x4a5353656c72; // "JSSelr"

/** The advisory lock, if no other sealer holds it; released when the transaction ends. */
export async function trySealerLock(trx: Kysely<AuditTables>): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${sql.lit(AUDIT_SEALER_LOCK)}) as locked`.execute(trx);
  return rows[0]?.locked === true;
}

/** This statement's snapshot (pg_snapshot text form): what a pass that seals all it sees may record as its horizon. */
export async function currentSnapshot(trx: Kysely<AuditTables>): Promise<string> {
  const { rows } = await sql<{ snapshot: string }>`select pg_current_snapshot()::text as snapshot`.execute(trx);
  return rows[0]!.snapshot;
}

/** The last seal: the chain's head. */
export async function chainHead(db: Kysely<AuditTables>): Promise<Pick<SealRow, 'seq' | 'hash' | 'event_id'> | undefined> {
  return db.selectFrom('audit_seals').select(['seq', 'hash', 'event_id']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
}

/** The newest horizon (through the partial index on seals that carry one). */
export async function latestHorizon(db: Kysely<AuditTables>): Promise<string | undefined> {
  const row = await db.selectFrom('audit_seals').select('horizon').where('horizon', 'is not', null).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  return row?.horizon ?? undefined;
}

/**
 * Events that may be unsealed, given the latest horizon: inserted by a transaction that was in
 * progress at the horizon or began after it. Everything else committed before the horizon and was
 * sealed by then. Both are index lookups on audit_events.tx; without a horizon (no seal yet), every event.
 */
function unsealed(db: Kysely<AuditTables>, horizon: string | undefined, afterId?: number, upToId?: number) {
  // A scalar subquery, not NOT EXISTS: the planner cannot turn it into a join that hashes the whole
  // seals table, so each candidate costs one probe of the unique index on event_id.
  let query = db.selectFrom('audit_events as e').where(sql<boolean>`(select s.seq from audit_seals s where s.event_id = e.id) is null`);
  if (afterId !== undefined) query = query.where('e.id', '>', afterId);
  if (upToId !== undefined) query = query.where('e.id', '<=', upToId);
  if (horizon !== undefined) {
    query = query.where(
      sql<boolean>`(e.tx >= pg_snapshot_xmax(${horizon}::pg_snapshot) or e.tx = any(array(select pg_snapshot_xip(${horizon}::pg_snapshot))))`,
    );
  }
  return query;
}

/** Up to `limit` unsealed events, in id order (only those after `afterId` and up to `upToId`, when given). */
export async function unsealedEvents(db: Kysely<AuditTables>, horizon: string | undefined, limit: number, afterId?: number, upToId?: number): Promise<AuditRow[]> {
  return unsealed(db, horizon, afterId, upToId).selectAll('e').orderBy('e.id').limit(limit).execute();
}

/** Seconds since the oldest unsealed event was written (the database's clock), 0 when none. */
export async function oldestUnsealedAge(db: Kysely<AuditTables>, horizon: string | undefined): Promise<number> {
  const row = await unsealed(db, horizon)
    .select(sql<string | number | null>`extract(epoch from clock_timestamp() - min(e.occurred_at))`.as('age'))
    .executeTakeFirst();
  return Math.max(0, Number(row?.age ?? 0));
}

export interface NewSeal {
  seq: number;
  event_id: number;
  prev_hash: string;
  hash: string;
  horizon: string | null;
}

export async function insertSeals(trx: Kysely<AuditTables>, seals: NewSeal[]): Promise<void> {
  if (seals.length > 0) await trx.insertInto('audit_seals').values(seals).execute();
}

/**
 * Every unsealed event, by a full scan (for `audit verify`, which reads the whole log anyway, and
 * does not trust the horizons).
 */
export async function unsealedTail(db: Kysely<AuditTables>): Promise<{ count: number; oldest: Date | undefined }> {
  const row = await unsealed(db, undefined)
    .select((eb) => [eb.fn.countAll<string | number | bigint>().as('count'), eb.fn.min('e.occurred_at').as('oldest')])
    .executeTakeFirst();
  const oldest = row?.oldest as Date | string | null | undefined;
  return { count: Number(row?.count ?? 0), oldest: oldest ? new Date(oldest) : undefined };
}

export type SealedEventRow = SealRow & { event: AuditRow | null };

/** Seals from position `fromSeq` on, in order, each with its event (null when the event is gone). */
export async function sealsFrom(db: Kysely<AuditTables>, fromSeq: number, limit: number): Promise<SealedEventRow[]> {
  const seals = await db.selectFrom('audit_seals').selectAll().where('seq', '>=', fromSeq).orderBy('seq').limit(limit).execute();
  if (seals.length === 0) return [];
  const events = await db
    .selectFrom('audit_events')
    .selectAll()
    .where(
      'id',
      'in',
      seals.map((seal) => Number(seal.event_id)),
    )
    .execute();
  const byId = new Map(events.map((event) => [Number(event.id), event]));
  return seals.map((seal) => ({ ...seal, event: byId.get(Number(seal.event_id)) ?? null }));
}

/** Sealed events after chain position `seq`, in chain order (what `audit tail` follows). */
export async function sealedEventsAfter(db: Kysely<AuditTables>, seq: number, limit: number): Promise<Array<{ seq: number; event: AuditRow }>> {
  const rows = await sealsFrom(db, seq + 1, limit);
  return rows.flatMap((row) => (row.event ? [{ seq: Number(row.seq), event: row.event }] : []));
}

/** The newest `count` sealed events, in chain order. */
export async function latestSealedEvents(db: Kysely<AuditTables>, count: number): Promise<Array<{ seq: number; event: AuditRow }>> {
  const newest = await db.selectFrom('audit_seals').select('seq').orderBy('seq', 'desc').limit(1).offset(Math.max(count - 1, 0)).executeTakeFirst();
  const head = newest ?? (await db.selectFrom('audit_seals').select('seq').orderBy('seq').limit(1).executeTakeFirst());
  return head ? sealedEventsAfter(db, Number(head.seq) - 1, count) : [];
}
