import type { Logger } from '../logger.ts';
import { AUDIT_EVENT_TYPES, type AuditEvent } from './events.ts';
import type { AuditLog } from './log.ts';

/** Records an event once: the audit row and the log line say the same thing. */
export type RecordEvent = (event: AuditEvent) => Promise<void>;

/**
 * The log line carries the event's type, outcome, ids and details (never the IP or user agent,
 * which stay in the audit row); a failed audit write goes to the audit log's own error handler.
 * `observe` sees every event first (the server's metrics count sign-ins and tokens there).
 */
export function createEventRecorder(audit: AuditLog, log: Logger, observe?: (event: AuditEvent) => void): RecordEvent {
  return async (event) => {
    observe?.(event);
    const { type, outcome, userId, clientId, sessionId, details } = event;
    log.info({ event: type, outcome, userId, clientId, sessionId, ...details }, AUDIT_EVENT_TYPES[type]);
    await audit.record(event);
  };
}
