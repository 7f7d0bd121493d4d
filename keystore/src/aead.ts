import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes } from 'node:crypto';
import { KeystoreError } from './errors.ts';

/**
 * Seals short-lived values on the request path (a refresh's kept answer, seconds): AES-256-GCM with
 * node:crypto, synchronously, under a key derived from the column data key for one purpose only.
 * The long-lived column values keep their JWE envelopes (envelope.ts); this format is never stored
 * for longer than its purpose allows, so it can change with a version prefix.
 *
 * Sealed text: `v1.` + base64url(12-byte random IV ‖ ciphertext ‖ 16-byte tag). The context (where
 * the value is stored) is the additional authenticated data: a value copied elsewhere does not open.
 */
export interface Aead {
  seal(plaintext: string, context: string): string;
  /** Throws KeystoreError for anything altered, sealed under another key or for another context. */
  open(sealed: string, context: string): string;
}

const VERSION = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** The 256-bit key for `purpose`, derived from a data key (HKDF-SHA256): each purpose has its own. */
export function deriveKey(dataKey: Uint8Array, purpose: string): Buffer {
  if (dataKey.length !== 32) throw new KeystoreError('ERR_ENVELOPE_INVALID', 'a data key is 32 bytes');
  return Buffer.from(hkdfSync('sha256', dataKey, 'jobswipe short-lived values', purpose, 32));
}

export function createAead(key: Buffer, purpose: string): Aead {
  if (key.length !== 32) throw new KeystoreError('ERR_ENVELOPE_INVALID', 'an AES-256-GCM key is 32 bytes');
  // A KeyObject: node:crypto then skips preparing a raw key on every call (about half the cost of a seal).
  const secret = createSecretKey(key);
  const undecryptable = `the sealed ${purpose} does not decrypt: it was altered, sealed with another key or for another place`;
  return {
    seal(plaintext, context) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', secret, iv, { authTagLength: TAG_BYTES }).setAAD(Buffer.from(context, 'utf8'));
      const body = Buffer.concat([iv, cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
      return VERSION + body.toString('base64url');
    },
    open(sealed, context) {
      if (!sealed.startsWith(VERSION)) throw new KeystoreError('ERR_ENVELOPE_INVALID', `the sealed ${purpose} is malformed`);
      const body = Buffer.from(sealed.slice(VERSION.length), 'base64url');
      if (body.length < IV_BYTES + TAG_BYTES) throw new KeystoreError('ERR_ENVELOPE_INVALID', `the sealed ${purpose} is malformed`);
      try {
        const decipher = createDecipheriv('aes-256-gcm', secret, body.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES })
          .setAAD(Buffer.from(context, 'utf8'))
          .setAuthTag(body.subarray(body.length - TAG_BYTES));
        return Buffer.concat([decipher.update(body.subarray(IV_BYTES, body.length - TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        throw new KeystoreError('ERR_ENVELOPE_INVALID', undecryptable);
      }
    },
  };
}
