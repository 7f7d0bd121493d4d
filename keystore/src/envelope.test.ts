import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { openPrivateKey, openValue, sealPrivateKey, sealValue, sealedWith } from './envelope.ts';
import { KeystoreError } from './errors.ts';
import { generateSigningKey, type GeneratedKey } from './generate.ts';
import { parseKek, type Kek } from './kek.ts';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;

/** The KeystoreError code a promise rejects with; fails the test if it rejects with anything else. */
async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(KeystoreError);
    return (error as KeystoreError).code;
  }
  throw new Error('expected a rejection');
}

const b64u = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const unb64u = (text: string) => new Uint8Array(Buffer.from(text, 'base64url'));

/** The compact JWE with one bit of one part flipped (part: 0 header, 1 encrypted key, 2 iv, 3 ciphertext, 4 tag). */
function flipBit(envelope: string, part: number, byte = 0): string {
  const parts = envelope.split('.');
  const bytes = unb64u(parts[part]!);
  expect(bytes.length).toBeGreaterThan(byte);
  bytes[byte] = bytes[byte]! ^ 0x01;
  parts[part] = b64u(bytes);
  return parts.join('.');
}

/** The compact JWE with its protected header replaced by edit(header), re-encoded. */
function editHeader(envelope: string, edit: (header: Record<string, unknown>) => Record<string, unknown>): string {
  const parts = envelope.split('.');
  const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8')) as Record<string, unknown>;
  parts[0] = Buffer.from(JSON.stringify(edit(header))).toString('base64url');
  return parts.join('.');
}

/** Expects the promise to reject with a KeystoreError of the given code. */
async function refused(promise: Promise<unknown>, code: KeystoreError['code']): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(KeystoreError);
  await expect(promise).rejects.toMatchObject({ code });
}

function withPart(envelope: string, part: number, edit: (bytes: Buffer) => Buffer): string {
  const parts = envelope.split('.');
  parts[part] = edit(Buffer.from(parts[part]!, 'base64url')).toString('base64url');
  return parts.join('.');
}

describe('private key envelopes', () => {
  let signing: GeneratedKey;
  let other: GeneratedKey;
  let kek: Kek;
  let otherKek: Kek;
  let envelope: string;

  beforeAll(async () => {
    [signing, other] = await Promise.all([generateSigningKey(), generateSigningKey()]);
    kek = parseKek(randomBytes(32).toString('base64'));
    otherKek = parseKek(randomBytes(32).toString('base64'));
    expect(kek.id).not.toBe(otherKek.id);
    envelope = await sealPrivateKey(signing.privateJwk, signing.kid, kek);
  });

  it('round trip: opening the envelope gives back the private JWK exactly', async () => {
    expect(signing.privateJwk.d).toEqual(expect.any(String));
    const opened = await openPrivateKey(envelope, signing.kid, kek);
    expect(opened).toStrictEqual(signing.privateJwk);
  });

  it('is a compact JWE with alg A256GCMKW, enc A256GCM, the KEK id as kid and the signing kid as skid', () => {
    const parts = envelope.split('.');
    expect(parts).toHaveLength(5);
    const header = decodeProtectedHeader(envelope);
    expect(header).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: kek.id, skid: signing.kid, cty: 'jwk+json' });
    // A256GCMKW's own iv and tag; nothing else is in the header.
    expect(Object.keys(header).sort()).toEqual(['alg', 'cty', 'enc', 'iv', 'kid', 'skid', 'tag']);
    // The wrapped content key is 32 bytes, the content IV 12, the tag 16.
    expect(unb64u(parts[1]!)).toHaveLength(32);
    expect(unb64u(parts[2]!)).toHaveLength(12);
    expect(unb64u(parts[4]!)).toHaveLength(16);
  });

  it('holds no private material in the clear, in the compact form or in any decoded part', () => {
    const decoded = envelope.split('.').map((part) => Buffer.from(part, 'base64url').toString('latin1'));
    for (const member of PRIVATE_MEMBERS) {
      const value = signing.privateJwk[member];
      expect(typeof value, member).toBe('string');
      expect(envelope).not.toContain(value);
      for (const part of decoded) expect(part).not.toContain(Buffer.from(value!, 'base64url').toString('latin1'));
    }
    expect(decoded[0]).not.toMatch(/"d"/);
  });

  it('seals the same key differently every time (fresh content key and IVs)', async () => {
    const again = await sealPrivateKey(signing.privateJwk, signing.kid, kek);
    expect(again).not.toBe(envelope);
    expect(again.split('.').slice(1).every((part, index) => part !== envelope.split('.')[index + 1])).toBe(true);
    expect(await openPrivateKey(again, signing.kid, kek)).toStrictEqual(signing.privateJwk);
  });

  it('another KEK fails with ERR_KEK_MISMATCH naming both KEK ids', async () => {
    const error = await openPrivateKey(envelope, signing.kid, otherKek).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(KeystoreError);
    expect((error as KeystoreError).code).toBe('ERR_KEK_MISMATCH');
    expect((error as KeystoreError).message).toContain(kek.id);
    expect((error as KeystoreError).message).toContain(otherKek.id);
  });

  it('a forged kid header (the other KEK id written in) still fails to decrypt: ERR_ENVELOPE_INVALID', async () => {
    const forged = editHeader(envelope, (header) => ({ ...header, kid: otherKek.id }));
    expect(decodeProtectedHeader(forged).kid).toBe(otherKek.id);
    expect(await codeOf(openPrivateKey(forged, signing.kid, otherKek))).toBe('ERR_ENVELOPE_INVALID');
  });

  it('a KEK claiming the right id but holding other bytes fails with ERR_ENVELOPE_INVALID', async () => {
    const impostor: Kek = { id: kek.id, key: otherKek.key };
    expect(await codeOf(openPrivateKey(envelope, signing.kid, impostor))).toBe('ERR_ENVELOPE_INVALID');
  });

  it.each([
    ['the encrypted key', 1],
    ['the IV', 2],
    ['the ciphertext', 3],
    ['the authentication tag', 4],
  ])('a flipped bit in %s fails with ERR_ENVELOPE_INVALID', async (_name, part) => {
    const tampered = flipBit(envelope, part);
    expect(tampered).not.toBe(envelope);
    expect(await codeOf(openPrivateKey(tampered, signing.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
    // The last byte too, for the longer parts.
    const last = unb64u(envelope.split('.')[part]!).length - 1;
    expect(await codeOf(openPrivateKey(flipBit(envelope, part, last), signing.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
  });

  it('a tampered protected header fails with ERR_ENVELOPE_INVALID (the header is authenticated)', async () => {
    const cty = editHeader(envelope, (header) => ({ ...header, cty: 'json' }));
    expect(await codeOf(openPrivateKey(cty, signing.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
    const added = editHeader(envelope, (header) => ({ ...header, x: 1 }));
    expect(await codeOf(openPrivateKey(added, signing.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
    // Same members, another order: other bytes, so other AAD.
    const reordered = editHeader(envelope, (header) => Object.fromEntries(Object.entries(header).reverse()));
    expect(reordered.split('.')[0]).not.toBe(envelope.split('.')[0]);
    expect(await codeOf(openPrivateKey(reordered, signing.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
  });

  it('an envelope moved to another signing key fails with ERR_ENVELOPE_INVALID', async () => {
    // Stored under another kid as it is.
    expect(await codeOf(openPrivateKey(envelope, other.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
    // With its skid header rewritten to match the row it was moved to.
    const rewritten = editHeader(envelope, (header) => ({ ...header, skid: other.kid }));
    expect(await codeOf(openPrivateKey(rewritten, other.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
  });

  it('an envelope whose skid was sealed wrong (the JWK inside is another key) fails with ERR_ENVELOPE_INVALID', async () => {
    const mislabelled = await sealPrivateKey(other.privateJwk, signing.kid, kek);
    expect(await codeOf(openPrivateKey(mislabelled, signing.kid, kek))).toBe('ERR_ENVELOPE_INVALID');
  });

  it('malformed envelopes fail with ERR_ENVELOPE_INVALID', async () => {
    for (const malformed of ['', 'not-a-jwe', 'a.b.c.d.e', envelope.split('.').slice(0, 4).join('.')]) {
      expect(await codeOf(openPrivateKey(malformed, signing.kid, kek)), malformed).toBe('ERR_ENVELOPE_INVALID');
    }
  });

  it('a JWK is sealed whatever members it has, and only those come back', async () => {
    const minimal: JWK = { kty: 'oct', k: b64u(randomBytes(16)), kid: 'minimal' };
    expect(await openPrivateKey(await sealPrivateKey(minimal, 'minimal', kek), 'minimal', kek)).toStrictEqual(minimal);
  });
});

describe('sealed column values', () => {
  const secret = 'Zm9vYmFyLXNlY3JldC12YWx1ZS10aGF0LWlzLWxvbmc';
  let kek: Kek;
  let otherKek: Kek;
  let sealed: string;

  beforeAll(async () => {
    kek = parseKek(randomBytes(32).toString('base64'));
    otherKek = parseKek(randomBytes(32).toString('base64'));
    sealed = await sealValue(secret, 'client_secret:web', kek);
  });

  it('round trip, and the sealed text does not contain the value', async () => {
    expect(sealed).not.toContain(secret);
    expect(Buffer.from(sealed.split('.')[3]!, 'base64url').toString('latin1')).not.toContain(secret);
    expect(await openValue(sealed, 'client_secret:web', kek)).toBe(secret);
  });

  it('is AES-256-GCM under a content key wrapped by the KEK (A256GCMKW), naming the KEK and the context', () => {
    expect(decodeProtectedHeader(sealed)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: kek.id, ctx: 'client_secret:web' });
    expect(sealedWith(sealed)).toBe(kek.id);
    expect(sealedWith(secret)).toBeUndefined();
  });

  it('seals the same value differently each time (fresh content key and IV)', async () => {
    const again = await sealValue(secret, 'client_secret:web', kek);
    expect(again).not.toBe(sealed);
    expect(await openValue(again, 'client_secret:web', kek)).toBe(secret);
  });

  it('refuses another KEK, another context, a changed ciphertext or tag, and junk', async () => {
    await refused(openValue(sealed, 'client_secret:web', otherKek), 'ERR_KEK_MISMATCH');
    await refused(openValue(sealed, 'client_secret:other', kek), 'ERR_ENVELOPE_INVALID');
    const flip = (bytes: Buffer) => {
      bytes[0] = bytes[0]! ^ 1;
      return bytes;
    };
    await refused(openValue(withPart(sealed, 3, flip), 'client_secret:web', kek), 'ERR_ENVELOPE_INVALID');
    await refused(openValue(withPart(sealed, 4, flip), 'client_secret:web', kek), 'ERR_ENVELOPE_INVALID');
    // Rewriting the header to name another client breaks the authenticated header: it does not decrypt.
    const moved = withPart(sealed, 0, (bytes) => Buffer.from(bytes.toString('utf8').replace('client_secret:web', 'client_secret:evil')));
    await refused(openValue(moved, 'client_secret:evil', kek), 'ERR_ENVELOPE_INVALID');
    await refused(openValue('not a jwe', 'client_secret:web', kek), 'ERR_ENVELOPE_INVALID');
  });
});
