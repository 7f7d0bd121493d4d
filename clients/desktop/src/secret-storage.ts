import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Where the token file's encryption comes from. In Electron, the OS keychain through safeStorage
 * (electron/safe-storage.ts); outside it, AES-256-GCM under JOBSWIPE_STORE_KEY. Shaped like
 * Electron's safeStorage so either fits.
 */
export interface SecretStorage {
  /** False when nothing can encrypt: tokens are then kept in memory only. */
  isEncryptionAvailable(): boolean;
  encryptString(plain: string): Buffer;
  decryptString(sealed: Buffer): string;
}

export class StoreKeyError extends Error {
  readonly code = 'ERR_STORE_KEY';
}

export const STORE_KEY_VARIABLE = 'JOBSWIPE_STORE_KEY';

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
// Binds the ciphertext to its purpose: a blob sealed under the same key for something else will not open.
const ASSOCIATED_DATA = Buffer.from('jobswipe-desktop token store v1');

/** The 32-byte key in JOBSWIPE_STORE_KEY (base64), or undefined when the variable is unset or empty. */
export function storeKeyFrom(value: string | undefined): Buffer | undefined {
  if (value === undefined || value === '') return undefined;
  const key = Buffer.from(value.trim(), 'base64');
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(value.trim()) || key.length !== 32) {
    throw new StoreKeyError(`${STORE_KEY_VARIABLE} must be 32 random bytes in base64 (for example: openssl rand -base64 32)`);
  }
  return key;
}

/** AES-256-GCM with a random 96-bit IV per write: version (1 byte) | IV | tag | ciphertext. */
export function aesGcmSecretStorage(key: Buffer): SecretStorage {
  if (key.length !== 32) throw new StoreKeyError('the store key must be 32 bytes');
  return {
    isEncryptionAvailable: () => true,
    encryptString(plain) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv).setAAD(ASSOCIATED_DATA);
      const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
    },
    decryptString(sealed) {
      if (sealed.length < 1 + IV_BYTES + TAG_BYTES || sealed[0] !== VERSION) throw new StoreKeyError('the token file is not in a format this app knows');
      const iv = sealed.subarray(1, 1 + IV_BYTES);
      const tag = sealed.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv).setAAD(ASSOCIATED_DATA).setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(sealed.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        throw new StoreKeyError(`the token file cannot be opened with this ${STORE_KEY_VARIABLE} (wrong key, or the file was changed)`);
      }
    },
  };
}

/** No encryption available: every write is refused, so nothing reaches the disk in the clear. */
export const NO_ENCRYPTION: SecretStorage = {
  isEncryptionAvailable: () => false,
  encryptString() {
    throw new StoreKeyError('no encryption is available: refusing to write tokens to disk');
  },
  decryptString() {
    throw new StoreKeyError('no encryption is available: cannot read the token file');
  },
};
