import { randomBytes } from 'node:crypto';
import { decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { KeystoreError } from './errors.ts';
import { openValue, sealValue, sealedWith } from './fields.ts';
import { parseKek, type Kek } from './kek.ts';

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
