import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from '../../test/support/stores.ts';
import { openPrivateKey } from './envelope.ts';
import { generateSigningKey } from './generate.ts';
import { keystoreOnStore, PRIVATE_MEMBERS, newKek, rejection, eventsOf, near, signsAndVerifies } from './keystore.fixtures.ts';

const run = promisify(execFile);

describe.each(STORE_KINDS)('keystore open on the %s store', (kind) => {
  const fixture = keystoreOnStore(kind);
  const { keystore, rows, row, kekIdStored, databaseNow, db } = fixture;

  it('open() creates one current key sealed under the KEK, records the KEK id, and is idempotent', async () => {
    const keys = keystore();
    const before = await databaseNow();
    const events = await keys.open();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'key.created', state: 'current' });
    near(events[0]!.activatesAt, before);
    const kid = events[0]!.kid;

    expect(await kekIdStored()).toEqual([fixture.kek.id]);
    const stored = await rows();
    expect(stored.map((r) => [r.kid, r.state])).toEqual([[kid, 'current']]);
    expect(stored[0]!.private_jwk).toBeNull();
    expect(stored[0]!.private_key_jwe).toEqual(expect.any(String));
    expect(decodeProtectedHeader(stored[0]!.private_key_jwe!)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: fixture.kek.id, skid: kid });
    expect(stored[0]!.public_jwk).toMatchObject({ kid, kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(stored[0]!.public_jwk).not.toHaveProperty('d');

    const signing = await keys.signingKeys();
    expect(signing.jwks.keys).toHaveLength(1);
    const [privateJwk] = signing.jwks.keys;
    expect(privateJwk).toMatchObject({ kid, kty: 'RSA', alg: 'RS256', use: 'sig', d: expect.any(String) });
    expect(privateJwk).not.toHaveProperty('key_ops');
    // The envelope holds exactly that key, and it pairs with the stored public key.
    expect(await openPrivateKey(stored[0]!.private_key_jwe!, kid, fixture.kek)).toStrictEqual(privateJwk);
    await signsAndVerifies(privateJwk!, stored[0]!.public_jwk);

    // Opening again, in this keystore or another one with the same KEK, changes nothing.
    expect(await keys.open()).toEqual([]);
    const again = keystore();
    expect(await again.open()).toEqual([]);
    expect((await again.signingKeys()).jwks.keys.map((jwk) => jwk.d)).toEqual([privateJwk!.d]);
    expect((await rows()).map((r) => r.kid)).toEqual([kid]);
    expect(await kekIdStored()).toEqual([fixture.kek.id]);
  });

  it('a keystore with another KEK fails open() with ERR_KEK_MISMATCH and changes nothing', async () => {
    await keystore().open();
    const before = await rows();
    const wrong = newKek();
    const stranger = keystore({ kek: wrong });

    const error = await rejection(stranger.open());
    expect(error.code).toBe('ERR_KEK_MISMATCH');
    expect(error.message).toContain(wrong.id);
    expect(error.message).toContain(fixture.kek.id);
    expect(error.message).toContain('key-encryption key');
    // Nor can it read the keys, rotate or revoke.
    expect((await rejection(stranger.signingKeys())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(stranger.rotateNow())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(stranger.revoke(before[0]!.kid))).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(stranger.rewrap(newKek()))).code).toBe('ERR_KEK_MISMATCH');

    expect(await rows()).toEqual(before);
    expect(await kekIdStored()).toEqual([fixture.kek.id]);
  });

  it('open() seals keys stored in the clear by the previous schema and clears the column', async () => {
    const [legacyCurrent, legacyRetired] = await Promise.all([generateSigningKey(), generateSigningKey()]);
    for (const [key, state] of [
      [legacyCurrent, 'current'],
      [legacyRetired, 'retired'],
    ] as const) {
      await db()
        .insertInto('signing_keys')
        .values({
          kid: key.kid,
          alg: 'RS256',
          state,
          public_jwk: JSON.stringify(key.publicJwk),
          private_jwk: JSON.stringify(key.privateJwk),
          private_key_jwe: null,
          activates_at: new Date(Date.now() - 60_000),
          retires_at: state === 'retired' ? new Date(Date.now() + 300_000) : null,
          revoked_at: null,
        })
        .execute();
    }
    expect((await row(legacyCurrent.kid))?.private_jwk).toMatchObject({ d: legacyCurrent.privateJwk.d });
    expect(await kekIdStored()).toEqual([]);

    const keys = keystore();
    const events = await keys.open();
    // Only sealing: the legacy current key still signs, so no key is created.
    expect(eventsOf(events).sort()).toEqual([`key.sealed ${legacyCurrent.kid}`, `key.sealed ${legacyRetired.kid}`].sort());
    expect(await kekIdStored()).toEqual([fixture.kek.id]);

    for (const key of [legacyCurrent, legacyRetired]) {
      const sealed = await row(key.kid);
      expect(sealed?.private_jwk).toBeNull();
      expect(sealed?.private_key_jwe).toEqual(expect.any(String));
      expect(sealed?.private_key_jwe).not.toContain(key.privateJwk.d);
      expect(await openPrivateKey(sealed!.private_key_jwe!, key.kid, fixture.kek)).toStrictEqual(key.privateJwk);
    }
    // A fresh keystore (nothing cached) serves the same keys from the envelopes.
    const signing = await keystore().signingKeys();
    expect(signing.jwks.keys.map((jwk) => [jwk.kid, jwk.d, jwk.key_ops])).toEqual([
      [legacyCurrent.kid, legacyCurrent.privateJwk.d, undefined],
      [legacyRetired.kid, legacyRetired.privateJwk.d, ['verify']],
    ]);
    // Opening again finds nothing left to seal.
    expect(await keys.open()).toEqual([]);
  });

  if (kind === 'postgres') {
    it('a pg_dump of the database holds no private key material', async () => {
      const keys = keystore();
      await keys.open();
      await keys.rotateNow();
      const privateJwks = (await keys.signingKeys()).jwks.keys;
      expect(privateJwks).toHaveLength(2);
      if (fixture.store.kind !== 'postgres') throw new Error('expected a Postgres store');

      const { stdout: dump } = await run('pg_dump', ['--data-only', '--no-owner', `--dbname=${fixture.store.url}`], { maxBuffer: 64 * 1024 * 1024 });
      // The dump does hold the keystore's rows: the kids, the public keys and the KEK id.
      expect(dump).toMatch(/COPY public\.signing_keys /);
      expect(dump).toContain(fixture.kek.id);
      for (const jwk of privateJwks) {
        expect(dump).toContain(jwk.kid);
        expect(dump).toContain(jwk.n);
        for (const member of PRIVATE_MEMBERS) {
          const value = jwk[member];
          expect(typeof value, member).toBe('string');
          expect(value!.length).toBeGreaterThan(40);
          expect(dump.includes(value!), `${member} of ${jwk.kid} is in the dump`).toBe(false);
        }
      }
      expect(dump).not.toMatch(/"d"\s*:/);
      // Nor the KEK itself, in either spelling.
      expect(dump).not.toContain(Buffer.from(fixture.kek.key).toString('base64'));
      expect(dump).not.toContain(Buffer.from(fixture.kek.key).toString('base64url'));
    });
  }
});
