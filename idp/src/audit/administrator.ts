import { userInfo } from 'node:os';
import type { KeyEvent } from '@jobswipe/keystore';
import { keyEventDetails, type AuditEvent, type AuditEventType } from './events.ts';
import type { AuditDetails } from './tables.ts';

/** The operating-system account running the command (the admin socket admits only that account). */
function operator(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? 'unknown'}`;
  }
}

/** An administrator's action from the CLI: who ran it goes into its details. */
export function administratorEvent(
  type: AuditEventType,
  fields: { userId?: string; clientId?: string; sessionId?: string; details?: AuditDetails } = {},
): AuditEvent {
  return { ...fields, type, outcome: 'success', details: { ...fields.details, operator: operator(), via: 'cli' } };
}

/** A signing key event caused by an administrator's command. */
export function administratorKeyEvent(event: KeyEvent): AuditEvent {
  return administratorEvent(event.event, { details: keyEventDetails(event, 'administrator') });
}
