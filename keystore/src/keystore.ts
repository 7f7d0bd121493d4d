import type { JWK } from 'jose';
import { columnCipher, type ColumnCipher } from './column-key.ts';
import type { KeyEvent, KeystoreContext } from './context.ts';
import type { Kek } from './kek.ts';
import type { RotationPolicy } from './lifecycle.ts';
import { listKeys } from './list.ts';
import { openKeystore } from './open.ts';
import { signingKeys, type SigningKeys } from './publish.ts';
import type { KeyInfo, KeystoreDb } from './queries.ts';
import { revoke } from './revoke.ts';
import { rewrap } from './rewrap.ts';
import { rotateIfDue, rotateNow } from './rotate.ts';

/** The keystore's operations, bound to one database and one KEK (each lives in its own module). */
export interface Keystore {
  /** Checks the KEK against the database, seals keys stored in the clear, creates the first key. */
  open(): Promise<KeyEvent[]>;
  /** Applies the scheduled rotation if it is due; a no-op in every process but the one holding the lock. */
  rotateIfDue(now?: Date): Promise<KeyEvent[]>;
  /** The next key (created first if there is none) becomes current now. */
  rotateNow(): Promise<KeyEvent[]>;
  /** Removes a key from publication for good; if it was signing, another key signs from now on. */
  revoke(kid: string): Promise<KeyEvent[]>;
  /** Seals every private key under a new KEK; the database then expects that KEK. */
  rewrap(newKek: Kek): Promise<KeyEvent[]>;
  /**
   * Seals and opens sensitive column values (AES-256-GCM) under the data key, which is itself
   * sealed under the KEK; creates the data key on first use. The opened key is kept for the life of
   * this keystore, so a rewrap by another process does not disturb it.
   */
  columnCipher(): Promise<ColumnCipher>;
  list(): Promise<KeyInfo[]>;
  signingKeys(): Promise<SigningKeys>;
}

export function createKeystore(db: KeystoreDb, options: { kek: Kek; policy: RotationPolicy }): Keystore {
  const context: KeystoreContext = { db, kek: options.kek, policy: options.policy, opened: new Map<string, JWK>() };
  let cipher: ReturnType<Keystore['columnCipher']> | undefined;
  return {
    open: () => openKeystore(context),
    rotateIfDue: () => rotateIfDue(context),
    rotateNow: () => rotateNow(context),
    revoke: (kid) => revoke(context, kid),
    rewrap: (newKek) => rewrap(context, newKek),
    columnCipher() {
      // Opened once; a failure is not kept, so the next call tries again.
      cipher ??= columnCipher(context).catch((error: unknown) => {
        cipher = undefined;
        throw error;
      });
      return cipher;
    },
    list: () => listKeys(context),
    signingKeys: () => signingKeys(context),
  };
}
