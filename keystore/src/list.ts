import type { KeystoreContext } from './context.ts';
import { readKeys, type KeyInfo } from './queries.ts';

/** Every key the database holds, revoked ones included, newest first. */
export async function listKeys(context: KeystoreContext): Promise<KeyInfo[]> {
  return readKeys(context.db);
}
