import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from '../../test/support/stores.ts';
import { keystoreOnStore, newKek, rejection } from './keystore.fixtures.ts';

describe.each(STORE_KINDS)('keystore the column cipher on the %s store', (kind) => {
  const fixture = keystoreOnStore(kind);
  const { keystore, db } = fixture;

  it('columnCipher: values are sealed under a data key that is itself sealed under the KEK, and rewrap keeps them readable', async () => {
    const keys = keystore();
    const cipher = await keys.columnCipher();
    const sealed = await cipher.seal('s3cret-value', 'client_secret:web');
    expect(sealed).not.toContain('s3cret-value');
    // Each value names the data key, not the KEK; the data key is stored only as a JWE under the KEK.
    expect(decodeProtectedHeader(sealed)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: cipher.id, ctx: 'client_secret:web' });
    const settings = await db().selectFrom('keystore_settings').select(['kek_id', 'column_key_jwe']).executeTakeFirstOrThrow();
    expect(settings.kek_id).toBe(fixture.kek.id);
    expect(decodeProtectedHeader(settings.column_key_jwe!)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: fixture.kek.id, ctx: 'column-key' });
    expect(await cipher.open(sealed, 'client_secret:web')).toBe('s3cret-value');
    expect((await rejection(cipher.open(sealed, 'client_secret:other'))).code).toBe('ERR_ENVELOPE_INVALID');

    // Another process with the same KEK reads the same data key rather than making a second one.
    const again = await keystore().columnCipher();
    expect(again.id).toBe(cipher.id);
    expect(await again.open(sealed, 'client_secret:web')).toBe('s3cret-value');
    // And derives the same short-lived keys: a refresh answer sealed by one server opens on another.
    expect(again.shortLived('refresh answer').open(cipher.shortLived('refresh answer').seal('answer', 'here'), 'here')).toBe('answer');
    // One with another KEK is refused.
    expect((await rejection(keystore({ kek: newKek() }).columnCipher())).code).toBe('ERR_KEK_MISMATCH');

    // rewrap moves the data key to the new KEK with the signing keys; the sealed value is untouched and
    // opens with a keystore on the new KEK, and the cipher opened before keeps working.
    await keys.open();
    const replacement = newKek();
    await keys.rewrap(replacement);
    const moved = await db().selectFrom('keystore_settings').select(['kek_id', 'column_key_jwe']).executeTakeFirstOrThrow();
    expect(moved.kek_id).toBe(replacement.id);
    expect(decodeProtectedHeader(moved.column_key_jwe!).kid).toBe(replacement.id);
    expect(await (await keystore({ kek: replacement }).columnCipher()).open(sealed, 'client_secret:web')).toBe('s3cret-value');
    expect(await cipher.open(sealed, 'client_secret:web')).toBe('s3cret-value');
    expect((await rejection(keystore().columnCipher())).code).toBe('ERR_KEK_MISMATCH');
  });
});
