import { CompactEncrypt, compactDecrypt, decodeProtectedHeader, type JWK } from 'jose';
import { KeystoreError } from './errors.ts';
import type { Kek } from './kek.ts';

/*
 * Everything the keystore seals is a compact JWE: a fresh 256-bit content key per envelope encrypts
 * the plaintext with AES-256-GCM, and the KEK (or the column data key) wraps that content key with
 * AES-256-GCM (alg A256GCMKW). A protected header member binds each envelope to where it is stored,
 * so an envelope copied to another row does not open there.
 */

/** Where an envelope belongs, and how its failures name it. */
interface Binding {
  /** The protected header member holding the binding: `skid` (a signing key) or `ctx` (a column value). */
  member: 'skid' | 'ctx';
  value: string;
  /** Failure messages, for this kind of envelope. */
  malformed: string;
  sealedWith: (kekId: string, configured: string) => string;
  boundElsewhere: (bound: unknown) => string;
  undecryptable: string;
}

const signingKeyBinding = (kid: string): Binding => ({
  member: 'skid',
  value: kid,
  malformed: `the envelope of signing key ${kid} is malformed`,
  sealedWith: (kekId, configured) => `signing key ${kid} is sealed with key-encryption key ${kekId}, not the configured ${configured}`,
  boundElsewhere: () => `the envelope stored for signing key ${kid} belongs to another key`,
  undecryptable: `the envelope of signing key ${kid} does not decrypt: it was altered or sealed with another key`,
});

const columnValueBinding = (context: string): Binding => ({
  member: 'ctx',
  value: context,
  malformed: `the sealed ${context} is malformed`,
  sealedWith: (kekId, configured) => `the ${context} is sealed with key-encryption key ${kekId}, not the configured ${configured}`,
  boundElsewhere: (bound) => `the sealed value stored as ${context} belongs to ${String(bound)}`,
  undecryptable: `the sealed ${context} does not decrypt: it was altered or sealed with another key`,
});

async function seal(plaintext: string, binding: Binding, kek: Kek, contentType?: string): Promise<string> {
  return new CompactEncrypt(new TextEncoder().encode(plaintext))
    .setProtectedHeader({
      alg: 'A256GCMKW',
      enc: 'A256GCM',
      kid: kek.id,
      ...(contentType ? { cty: contentType } : {}),
      [binding.member]: binding.value,
    })
    .encrypt(kek.key);
}

/** Opens an envelope sealed for the same binding; tampering, another KEK or another binding fails. */
async function open(envelope: string, binding: Binding, kek: Kek): Promise<string> {
  let header: Record<string, unknown>;
  try {
    header = decodeProtectedHeader(envelope);
  } catch {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', binding.malformed);
  }
  if (header['kid'] !== kek.id) throw new KeystoreError('ERR_KEK_MISMATCH', binding.sealedWith(String(header['kid']), kek.id));
  if (header[binding.member] !== binding.value) {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', binding.boundElsewhere(header[binding.member]));
  }
  try {
    const { plaintext } = await compactDecrypt(envelope, kek.key, {
      keyManagementAlgorithms: ['A256GCMKW'],
      contentEncryptionAlgorithms: ['A256GCM'],
    });
    return new TextDecoder('utf-8', { fatal: true }).decode(plaintext);
  } catch {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', binding.undecryptable);
  }
}

/** Seals a private JWK under the KEK, bound to its signing key's kid (header `skid`). */
export async function sealPrivateKey(privateJwk: JWK, signingKid: string, kek: Kek): Promise<string> {
  return seal(JSON.stringify(privateJwk), signingKeyBinding(signingKid), kek, 'jwk+json');
}

/** Opens an envelope sealed by sealPrivateKey; any tampering, another KEK or another key's envelope fails. */
export async function openPrivateKey(envelope: string, signingKid: string, kek: Kek): Promise<JWK> {
  const jwk = JSON.parse(await open(envelope, signingKeyBinding(signingKid), kek)) as JWK;
  if (jwk.kid !== signingKid) {
    throw new KeystoreError('ERR_ENVELOPE_INVALID', `the envelope stored for signing key ${signingKid} holds key ${String(jwk.kid)}`);
  }
  return jwk;
}

/**
 * Seals a sensitive column value (a client secret, later upstream tokens and MFA secrets), bound to
 * where it is stored (header `ctx`, e.g. `client_secret:<client_id>`).
 */
export async function sealValue(plaintext: string, context: string, kek: Kek): Promise<string> {
  return seal(plaintext, columnValueBinding(context), kek);
}

/** Opens a value sealed by sealValue for the same context; tampering, another KEK or another context fails. */
export async function openValue(envelope: string, context: string, kek: Kek): Promise<string> {
  return open(envelope, columnValueBinding(context), kek);
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
