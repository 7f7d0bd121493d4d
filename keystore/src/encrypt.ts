import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type JWK } from 'jose';
import { KeystoreError } from './errors.ts';
import type { Kek } from './kek.ts';

/** The header field that binds an envelope to the signing key it holds; protected, so part of the AAD. */
const SIGNING_KID = 'skid';

/**
 * Seals a private JWK as a JWE: a fresh 256-bit content key per envelope encrypts the key with
 * AES-256-GCM, and the KEK wraps that content key with AES-256-GCM (alg A256GCMKW).
 */
export async function sealPrivateKey(privateJwk: JWK, signingKid: string, kek: Kek): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(JSON.stringify(privateJwk)))
    .setProtectedHeader({ alg: 'A256GCMKW', enc: 'A256GCM', kid: kek.id, cty: 'jwk+json', [SIGNING_KID]: signingKid })
    .encrypt(kek.key);
}

/** Opens an envelope sealed by sealPrivateKey; any tampering, another KEK or another key's envelope fails. */
export async function openPrivateKey(envelope: string, signingKid: string, kek: Kek): Promise<JWK> {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(envelope);
  } catch {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the envelope of signing key ${signingKid} is malformed`);
  }
  if (header['kid'] !== kek.id) {
    throw new KeystoreError(
      'ERR_KEK_MISMATCH',
      `signing key ${signingKid} is sealed with key-encryption key ${String(header['kid'])}, not the configured ${kek.id}`,
    );
  }
  if (header[SIGNING_KID] !== signingKid) {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the envelope stored for signing key ${signingKid} belongs to another key`);
  }
  let plaintext: Uint8Array;
  try {
    ({ plaintext } = await compactDecrypt(envelope, kek.key, { keyManagementAlgorithms: ['A256GCMKW'], contentEncryptionAlgorithms: ['A256GCM'] }));
  } catch {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the envelope of signing key ${signingKid} does not decrypt: it was altered or sealed with another key`);
  }
  const jwk = JSON.parse(new TextDecoder().decode(plaintext)) as JWK;
  if (jwk.kid !== signingKid) {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the envelope stored for signing key ${signingKid} holds key ${String(jwk.kid)}`);
  }
  return jwk;
}
