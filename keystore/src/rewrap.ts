import { resealColumnKey } from './column-key.ts';
import type { KeyEvent, KeystoreContext } from './context.ts';
import { openPrivateKey, sealPrivateKey } from './envelope.ts';
import type { Kek } from './kek.ts';
import { withKeystoreLock } from './lock.ts';
import { readPrivateKeys, readSettings, replaceKek, storeEnvelope } from './queries.ts';

/** Seals every private key, and the column data key, under a new KEK; the database then expects that KEK. */
export async function rewrap(context: KeystoreContext, newKek: Kek): Promise<KeyEvent[]> {
  return (await withKeystoreLock(context, async (trx) => {
    const events: KeyEvent[] = [];
    for (const key of await readPrivateKeys(trx)) {
      const privateJwk = key.envelope ? await openPrivateKey(key.envelope, key.kid, context.kek) : key.legacy!;
      await storeEnvelope(trx, key.kid, await sealPrivateKey(privateJwk, key.kid, newKek));
      events.push({ event: 'key.rewrapped', kid: key.kid });
    }
    // In the same transaction as the signing keys, so the database never expects two KEKs.
    const columnKey = await resealColumnKey((await readSettings(trx))?.columnKeyEnvelope ?? null, context.kek, newKek);
    await replaceKek(trx, newKek.id, columnKey);
    return events;
  }))!;
}
