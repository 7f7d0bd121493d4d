import type { KeystoreContext } from './context.ts';
import { KeystoreError } from './errors.ts';
import { readSettings, tryLock, waitForLock, type KeystoreDb } from './queries.ts';

/**
 * Runs fn in a transaction holding the keystore lock, once the database is known to expect this
 * keystore's KEK. `wait: false` gives up (undefined) if another process holds the lock.
 */
export async function withKeystoreLock<T>(
  context: KeystoreContext,
  fn: (trx: KeystoreDb) => Promise<T>,
  options: { wait: boolean } = { wait: true },
): Promise<T | undefined> {
  return context.db.transaction().execute(async (trx) => {
    if (options.wait) await waitForLock(trx);
    else if (!(await tryLock(trx))) return undefined;
    assertCurrentKek(context, (await readSettings(trx))?.kekId, 'the signing keys are');
    return fn(trx);
  });
}

/** Refuses a KEK other than the one the database records (none recorded yet: any KEK will do). */
export function assertCurrentKek(
  context: KeystoreContext,
  recordedKekId: string | undefined,
  sealed: 'the signing keys are' | 'the column data key is',
): void {
  if (recordedKekId !== undefined && recordedKekId !== context.kek.id) {
    throw new KeystoreError(
      'ERR_KEK_MISMATCH',
      `the configured key-encryption key (${context.kek.id}) is not the one ${sealed} sealed with (${recordedKekId}); set KEYSTORE_KEK or KEYSTORE_KEK_FILE to that key`,
    );
  }
}
