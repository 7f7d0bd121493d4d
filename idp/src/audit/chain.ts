import { createHash } from 'node:crypto';
import type { AuditDetails } from './tables.ts';

/** The prev_hash of the first event. */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields a row's hash covers: all of them but the hashes themselves. */
export interface ChainedEvent {
  id: number;
  occurredAt: Date;
  type: string;
  outcome: string;
  userId: string | null;
  clientId: string | null;
  sessionId: string | null;
  ip: string | null;
  userAgent: string | null;
  details: AuditDetails;
}

/**
 * A JSON array in a fixed field order, details with their keys sorted: jsonb does not keep key
 * order, so the encoding must not depend on it. Times are milliseconds (what the writer stores).
 */
export function canonicalEncoding(event: ChainedEvent): string {
  const details = Object.keys(event.details)
    .sort()
    .map((key) => [key, event.details[key] ?? null]);
  return JSON.stringify([
    event.id,
    event.occurredAt.toISOString(),
    event.type,
    event.outcome,
    event.userId,
    event.clientId,
    event.sessionId,
    event.ip,
    event.userAgent,
    details,
  ]);
}

/** hash = SHA-256(prev_hash, newline, canonical encoding), in hex. */
export function chainHash(prevHash: string, event: ChainedEvent): string {
  return createHash('sha256').update(`${prevHash}\n${canonicalEncoding(event)}`).digest('hex');
}
