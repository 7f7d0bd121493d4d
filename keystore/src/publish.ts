import type { JWK } from 'jose';
import type { KeystoreContext } from './context.ts';
import { openPrivateKey } from './envelope.ts';
import { publishedKeys } from './lifecycle.ts';
import { readPrivateKeys } from './queries.ts';

export interface SigningKeys {
  /** Changes whenever the set of published keys or their states change. */
  version: string;
  /** Private JWKs for the provider: the current key first and the only one allowed to sign. */
  jwks: { keys: JWK[] };
}

/** The keys to publish, opened; each envelope is opened once per keystore. */
export async function signingKeys(context: KeystoreContext): Promise<SigningKeys> {
  const keys = publishedKeys(await readPrivateKeys(context.db));
  const jwks: JWK[] = [];
  for (const key of keys) {
    let privateJwk = context.opened.get(key.kid);
    if (!privateJwk) {
      privateJwk = key.envelope ? await openPrivateKey(key.envelope, key.kid, context.kek) : key.legacy!;
      context.opened.set(key.kid, privateJwk);
    }
    // Only the current key may sign; the others are published for verification only.
    jwks.push(key.state === 'current' ? privateJwk : { ...privateJwk, key_ops: ['verify'] });
  }
  return { version: keys.map((key) => `${key.kid}:${key.state}`).join(','), jwks: { keys: jwks } };
}
