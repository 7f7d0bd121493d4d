import type { ValueCipher } from '@jobswipe/adapters';
import { errors } from 'oidc-provider';

/*
 * Client secrets are sealed at rest with AES-256-GCM under the keystore's column data key, which is
 * sealed under the key-encryption key (keystore/src/column-key.ts). The provider needs them
 * back in the clear to check client_secret_basic, _post and _jwt, so they are encrypted, not hashed.
 */

/**
 * The server's cipher: a secret that does not open (the row was altered or copied from another
 * client) is logged and makes that client's authentication fail with invalid_client, never a
 * server error.
 */
export function serverCipher(cipher: ValueCipher, onOpenFailure: (error: Error, context: string) => void): ValueCipher {
  return {
    seal: (plaintext, context) => cipher.seal(plaintext, context),
    async open(sealed, context) {
      try {
        return await cipher.open(sealed, context);
      } catch (error) {
        onOpenFailure(error as Error, context);
        throw new errors.InvalidClientAuth('the client secret stored for this client cannot be opened');
      }
    },
  };
}

/** A cipher that opens the keystore only when a secret is first sealed or opened (most CLI commands never need it). */
export function lazyCipher(load: () => Promise<ValueCipher>): ValueCipher {
  let cipher: Promise<ValueCipher> | undefined;
  const get = () =>
    (cipher ??= load().catch((error: unknown) => {
      cipher = undefined;
      throw error;
    }));
  return {
    seal: async (plaintext, context) => (await get()).seal(plaintext, context),
    open: async (sealed, context) => (await get()).open(sealed, context),
  };
}
