import type { KeyEvent, KeyInfo, Keystore } from '@jobswipe/keystore';
import { actorKeyEvent, ADMINISTRATOR, type Actor } from '../audit/administrator.ts';
import type { RecordEvent } from '../audit/record-event.ts';

export interface KeyAdministrationDependencies {
  /** The signing keystore, opened on first use (the CLI needs the key-encryption key only then). */
  keystore: () => Promise<Keystore>;
  recordEvent: RecordEvent;
}

/**
 * What an administrator does to the signing keys, from the CLI (`idp keys …`) or the admin API.
 * Every server picks a change up within KEYSTORE_POLL_SECONDS; each event is recorded with who caused it.
 */
export function createKeyAdministration(deps: KeyAdministrationDependencies) {
  async function change(actor: Actor, apply: (keys: Keystore) => Promise<KeyEvent[]>): Promise<KeyEvent[]> {
    const keys = await deps.keystore();
    await keys.open();
    const events = await apply(keys);
    for (const event of events) await deps.recordEvent(actorKeyEvent(actor, event));
    return events;
  }

  return {
    /** Every signing key with its state and dates, revoked ones included. */
    async list(): Promise<KeyInfo[]> {
      return (await deps.keystore()).list();
    },

    /** The next key signs from now on (one is created if none waits). */
    rotate(actor: Actor = ADMINISTRATOR): Promise<KeyEvent[]> {
      return change(actor, (keys) => keys.rotateNow());
    },

    /** Withdraws a key from the JWKS for good (a leaked key); a KeystoreError ERR_KEY_NOT_FOUND when no published key has the kid. */
    revoke(kid: string, actor: Actor = ADMINISTRATOR): Promise<KeyEvent[]> {
      return change(actor, (keys) => keys.revoke(kid));
    },
  };
}

export type KeyAdministration = ReturnType<typeof createKeyAdministration>;
