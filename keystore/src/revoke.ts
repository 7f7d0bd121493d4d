import type { KeyEvent, KeystoreContext } from './context.ts';
import { KeystoreError } from './errors.ts';
import { withKeystoreLock } from './lock.ts';
import { readKeys, revokeKey } from './queries.ts';
import { rotateOnSchedule } from './rotate.ts';

/** Removes a key from publication for good; if it was signing, another key signs from now on. */
export async function revoke(context: KeystoreContext, kid: string): Promise<KeyEvent[]> {
  return (await withKeystoreLock(context, async (trx) => {
    const key = (await readKeys(trx)).find((candidate) => candidate.kid === kid);
    if (!key || key.state === 'revoked') {
      throw new KeystoreError('ERR_KEY_NOT_FOUND', `no published signing key has kid ${kid}`);
    }
    await revokeKey(trx, kid);
    context.opened.delete(kid);
    const events: KeyEvent[] = [{ event: 'key.revoked', kid, state: 'revoked' }];
    // If it was signing, the next key (or a new one) signs from now on.
    return [...events, ...(await rotateOnSchedule(context, trx))];
  }))!;
}
