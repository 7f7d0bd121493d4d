import { unredacted, type Logger } from '../logger.ts';
import { AUDIT_EVENT_TYPES, type AuditEvent } from './events.ts';
import { SECRET_KEY, type AuditLog } from './log.ts';
import type { AuditDetails } from './tables.ts';

/** Records an event once: the audit row and the log line say the same thing. */
export type RecordEvent = (event: AuditEvent) => Promise<void>;

/**
 * Details the audit log itself accepts (flat values, no key that names a secret: audit/log.ts) need
 * no redaction in the log line either; anything else goes through the logger's redaction.
 */
function plainDetails(details: AuditDetails | undefined): boolean {
  if (details === undefined) return true;
  for (const key in details) {
    if (SECRET_KEY.test(key)) return false;
    const value = details[key];
    if (value !== null && typeof value === 'object') return false;
  }
  return true;
}

/**
 * The log line carries the event's type, outcome, ids and details (never the IP or user agent,
 * which stay in the audit row); a failed audit write goes to the audit log's own error handler.
 * `observe` sees every event first (the server's metrics count sign-ins and tokens there).
 */
export function createEventRecorder(audit: AuditLog, log: Logger, observe?: (event: AuditEvent) => void): RecordEvent {
  const plain = unredacted(log);
  return async (event) => {
    observe?.(event);
    const { type, outcome, userId, clientId, sessionId, details } = event;
    (plainDetails(details) ? plain : log).info({ event: type, outcome, userId, clientId, sessionId, ...details }, AUDIT_EVENT_TYPES[type]);
    await audit.record(event);
  };
}
