import { CompactEncrypt, compactDecrypt, decodeProtectedHeader } from 'jose';
import { KeystoreError } from './errors.ts';
import type { Kek } from './kek.ts';

/**
 * The protected header field that binds a sealed value to where it is stored (e.g.
 * `client_secret:<client_id>`); being protected, it is authenticated with the ciphertext, so a
 * value copied to another row does not open there.
 */
const CONTEXT = 'ctx';

/**
 * Seals a sensitive column value (a client secret, later upstream tokens and MFA secrets) as a
 * compact JWE: a fresh 256-bit content key encrypts the value with AES-256-GCM, and the KEK wraps
 * that key with AES-256-GCM (alg A256GCMKW), exactly as the signing keys are sealed.
 */
export async function sealValue(plaintext: string, context: string, kek: Kek): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({ alg: 'A256GCMKW', enc: 'A256GCM', kid: kek.id, [CONTEXT]: context })
    .encrypt(kek.key);
}

/** The KEK id a sealed value names, or undefined when the text is not a sealed value. */
export function sealedWith(envelope: string): string | undefined {
  try {
    const kid = decodeProtectedHeader(envelope).kid;
    return typeof kid === 'string' ? kid : undefined;
  } catch {
    return undefined;
  }
}

/** Opens a value sealed by sealValue for the same context; tampering, another KEK or another context fails. */
export async function openValue(envelope: string, context: string, kek: Kek): Promise<string> {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(envelope);
  } catch {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the sealed ${context} is malformed`);
  }
  if (header['kid'] !== kek.id) {
    throw new KeystoreError('ERR_KEK_MISMATCH', `the ${context} is sealed with key-encryption key ${String(header['kid'])}, not the configured ${kek.id}`);
  }
  if (header[CONTEXT] !== context) {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the sealed value stored as ${context} belongs to ${String(header[CONTEXT])}`);
  }
  try {
    const { plaintext } = await compactDecrypt(envelope, kek.key, {
      keyManagementAlgorithms: ['A256GCMKW'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the sealed ${context} does not decrypt: it was altered or sealed with another key`);
  }
}
