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

/** Who changes something: an administrator at the CLI, or a client of the admin API (its client-credentials token). */
export type Actor = { kind: 'administrator' } | { kind: 'client'; clientId: string };

/** The CLI's actor: the operating-system account is recorded with each event. */
export const ADMINISTRATOR: Actor = { kind: 'administrator' };

/**
 * An administrative action by either actor. Through the admin API the calling client goes into
 * `details.admin_client` and, when the event names no client of its own, into `client_id`.
 */
export function actorEvent(
  actor: Actor,
  type: AuditEventType,
  fields: { userId?: string; clientId?: string; sessionId?: string; details?: AuditDetails } = {},
): AuditEvent {
  if (actor.kind === 'administrator') return administratorEvent(type, fields);
  return {
    ...fields,
    type,
    outcome: 'success',
    clientId: fields.clientId ?? actor.clientId,
    details: { ...fields.details, via: 'admin_api', admin_client: actor.clientId },
  };
}

/** A signing key event caused by either actor. */
export function actorKeyEvent(actor: Actor, event: KeyEvent): AuditEvent {
  return actorEvent(actor, event.event, { details: keyEventDetails(event, 'administrator') });
}
