import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '@jobswipe/config';
import { createKeystore, KeystoreError, parseKek, type Kek, type Keystore } from '@jobswipe/keystore';
import type { Kysely } from 'kysely';
import type { KeystoreTables } from '@jobswipe/keystore';
import { writeDataFile } from './data-dir.ts';
import { LIFETIMES } from './provider/lifetimes.ts';

/** Clock skew allowed to relying parties when a retired key stops being published. */
const SKEW_SECONDS = 5 * 60;

async function readKekFile(path: string): Promise<Kek> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new KeystoreError('ERR_KEK_INVALID', `cannot read the key-encryption key file ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  return parseKek(text);
}

/**
 * The key-encryption key from configuration. Outside production, with none configured, one is
 * generated once into DATA_DIR/keystore.kek; `generated` tells the caller to warn about it.
 */
export async function loadKek(config: Config): Promise<{ kek: Kek; generated: string | undefined }> {
  const source = config.keystore.kek;
  if (source.kind === 'value') return { kek: parseKek(source.value), generated: undefined };
  if (source.kind === 'file') return { kek: await readKekFile(source.path), generated: undefined };
  const path = join(config.dataDir, 'keystore.kek');
  await writeDataFile(path, `${randomBytes(32).toString('base64')}\n`).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
  return { kek: await readKekFile(path), generated: path };
}

export { readKekFile };

export function openKeystore(db: Kysely<KeystoreTables>, config: Config, kek: Kek): Keystore {
  return createKeystore(db, {
    kek,
    policy: {
      rotationSeconds: config.keystore.rotationSeconds,
      // Every process must publish a new next key for a whole JWKS cache lifetime before it signs.
      // The others learn of it at their next poll, or one later when a poll runs past its interval
      // on a busy machine (the timer skips a tick while a refresh is still under way).
      prepublishSeconds: config.keystore.jwksCacheSeconds + 2 * config.keystore.pollSeconds,
      // A retired key stays published while anything it signed may still be presented.
      retainSeconds: Math.max(LIFETIMES.idToken, LIFETIMES.accessToken) + SKEW_SECONDS,
    },
  });
}
