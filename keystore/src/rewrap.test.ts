import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from '../../test/support/stores.ts';
import type { KeyEvent } from './context.ts';
import { openPrivateKey } from './envelope.ts';
import { keystoreOnStore, newKek, rejection, signsAndVerifies } from './keystore.fixtures.ts';

describe.each(STORE_KINDS)('keystore rewrap on the %s store', (kind) => {
  const fixture = keystoreOnStore(kind);
  const { keystore, rows, row, kekIdStored } = fixture;

  it('rewrap(newKek) re-seals every key: the old KEK is refused from then on, the new one opens and signs', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    await keys.rotateNow();
    await keys.rotateNow();
    await keys.revoke(first);
    const before = await keys.signingKeys();
    const published = before.jwks.keys.map((jwk) => jwk.kid!);
    expect(published).toHaveLength(2);

    const replacement = newKek();
    const events = await keys.rewrap(replacement);
    expect(events.map((event) => event.event)).toEqual(['key.rewrapped', 'key.rewrapped']);
    expect(events.map((event) => event.kid).sort()).toEqual([...published].sort());
    expect(await kekIdStored()).toEqual([replacement.id]);
    for (const stored of await rows()) {
      if (stored.state === 'revoked') {
        expect(stored.private_key_jwe).toBeNull();
        continue;
      }
      expect(stored.private_jwk).toBeNull();
      expect(decodeProtectedHeader(stored.private_key_jwe!)).toMatchObject({ kid: replacement.id, skid: stored.kid });
      expect((await rejection(openPrivateKey(stored.private_key_jwe!, stored.kid, fixture.kek))).code).toBe('ERR_KEK_MISMATCH');
    }

    // The old KEK: a new keystore fails to open or read, and the one that rewrapped can no longer change anything.
    const old = keystore();
    expect((await rejection(old.open())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(old.signingKeys())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(keys.rotateNow())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(keys.rotateIfDue())).code).toBe('ERR_KEK_MISMATCH');

    // The new KEK: opens without changes and serves the very same keys.
    const renewed = keystore({ kek: replacement });
    expect(await renewed.open()).toEqual([]);
    const after = await renewed.signingKeys();
    expect(after.version).toBe(before.version);
    expect(after.jwks.keys).toStrictEqual(before.jwks.keys);
    const current = after.jwks.keys[0]!;
    await signsAndVerifies(current, (await row(current.kid!))!.public_jwk);
    // And it can rotate under the new KEK.
    const rotated = await renewed.rotateNow();
    expect(rotated.map((event) => event.event)).toEqual(['key.created', 'key.retired', 'key.promoted']);
    expect(decodeProtectedHeader((await row(rotated[0]!.kid))!.private_key_jwe!).kid).toBe(replacement.id);
  });
});
