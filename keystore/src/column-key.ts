import { createHash, randomBytes } from 'node:crypto';
import type { ValueCipher } from '@jobswipe/adapters';
import type { KeystoreContext } from './context.ts';
import { createAead, deriveKey, type Aead } from './aead.ts';
import { openValue, sealValue } from './envelope.ts';
import { KeystoreError } from './errors.ts';
import type { Kek } from './kek.ts';
import { assertCurrentKek, withKeystoreLock } from './lock.ts';
import { readSettings, recordKek, storeColumnKeyIfUnset } from './queries.ts';

/** The binding of the data key's own envelope under the KEK. */
const COLUMN_KEY_CONTEXT = 'column-key';

/** The data key as a key that sealValue/openValue use, named like a KEK by its fingerprint. */
function dataKey(secret: string): Kek {
  const key = Buffer.from(secret, 'base64url');
  if (key.length !== 32) throw new KeystoreError('ERR_ENVELOPE_INVALID', 'the stored column data key is not 32 bytes');
  const id = `dek-${createHash('sha256').update('jobswipe column key id\0').update(key).digest('base64url').slice(0, 16)}`;
  return { id, key: new Uint8Array(key) };
}

async function readColumnKey(context: KeystoreContext): Promise<Kek> {
  let settings = await readSettings(context.db);
  if (!settings?.columnKeyEnvelope) {
    await withKeystoreLock(context, async (trx) => {
      await recordKek(trx, context.kek.id);
      await storeColumnKeyIfUnset(trx, await sealValue(randomBytes(32).toString('base64url'), COLUMN_KEY_CONTEXT, context.kek));
    });
    settings = await readSettings(context.db);
  }
  assertCurrentKek(context, settings!.kekId, 'the column data key is');
  return dataKey(await openValue(settings!.columnKeyEnvelope!, COLUMN_KEY_CONTEXT, context.kek));
}

export interface ColumnCipher extends ValueCipher {
  /** The data key's fingerprint, named in every value it seals. */
  readonly id: string;
  /** A synchronous cipher for short-lived values of one purpose, under a key derived from the data key (aead.ts). */
  shortLived(purpose: string): Aead;
}

/**
 * Seals and opens sensitive column values (AES-256-GCM) under the data key, which is itself sealed
 * under the KEK; creates the data key on first use.
 */
export async function columnCipher(context: KeystoreContext): Promise<ColumnCipher> {
  const key = await readColumnKey(context);
  return {
    id: key.id,
    seal: (plaintext, sealContext) => sealValue(plaintext, sealContext, key),
    open: (sealed, sealContext) => openValue(sealed, sealContext, key),
    shortLived: (purpose) => createAead(deriveKey(key.key, purpose), purpose),
  };
}

/** The data key's envelope moved from one KEK to another; the values it seals stay as they are. */
export async function resealColumnKey(envelope: string | null, from: Kek, to: Kek): Promise<string | null> {
  return envelope ? sealValue(await openValue(envelope, COLUMN_KEY_CONTEXT, from), COLUMN_KEY_CONTEXT, to) : null;
}
