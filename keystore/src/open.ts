import type { KeyEvent, KeystoreContext } from './context.ts';
import { sealPrivateKey } from './envelope.ts';
import { withKeystoreLock } from './lock.ts';
import { signingKeys } from './publish.ts';
import { readLegacyKeys, recordKek, storeEnvelope } from './queries.ts';
import { rotateOnSchedule } from './rotate.ts';

/** Checks the KEK against the database, seals keys stored in the clear, creates the first key. */
export async function openKeystore(context: KeystoreContext): Promise<KeyEvent[]> {
  const events = (await withKeystoreLock(context, async (trx) => {
    await recordKek(trx, context.kek.id);
    const sealed: KeyEvent[] = [];
    for (const legacy of await readLegacyKeys(trx)) {
      await storeEnvelope(trx, legacy.kid, await sealPrivateKey(legacy.privateJwk, legacy.kid, context.kek));
      sealed.push({ event: 'key.sealed', kid: legacy.kid });
    }
    return [...sealed, ...(await rotateOnSchedule(context, trx))];
  }))!;
  // Fail now, with the keystore's message, if the current key cannot be opened.
  await signingKeys(context);
  return events;
}
