import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { decodeProtectedHeader, importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type Database, type StoreOptions } from '@jobswipe/adapters';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, STORE_KINDS, type TestStore } from '../../test/support/stores.ts';
import { openPrivateKey } from './envelope.ts';
import { KeystoreError } from './errors.ts';
import { generateSigningKey } from './generate.ts';
import { parseKek, type Kek } from './kek.ts';
import type { RotationPolicy } from './lifecycle.ts';
import type { KeyEvent } from './context.ts';
import { createKeystore, type Keystore } from './keystore.ts';
import type { KeystoreTables } from './tables.ts';

const run = promisify(execFile);

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;
/** Nothing is due for an hour; a next key is published a minute before it signs. */
const LONG: RotationPolicy = { rotationSeconds: 3600, prepublishSeconds: 60, retainSeconds: 600 };
/** Everything is due at once: a next key right after start, signing a second later. */
const TINY: RotationPolicy = { rotationSeconds: 1, prepublishSeconds: 1, retainSeconds: 60 };

const newKek = () => parseKek(randomBytes(32).toString('base64'));

/** The KeystoreError a promise rejects with; fails the test if it resolves or rejects with anything else. */
async function rejection(promise: Promise<unknown>): Promise<KeystoreError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(KeystoreError);
    return error as KeystoreError;
  }
  throw new Error('expected a KeystoreError');
}

const eventsOf = (events: KeyEvent[]) => events.map((event) => `${event.event} ${event.kid}`);
const near = (actual: Date | undefined, expected: Date, toleranceMs = 2_000) => {
  expect(actual).toBeInstanceOf(Date);
  expect(Math.abs(actual!.getTime() - expected.getTime()), `${actual?.toISOString()} vs ${expected.toISOString()}`).toBeLessThanOrEqual(toleranceMs);
};

/** Signs a JWT with the private JWK and verifies it with the public JWK: proves the two are a pair. */
async function signsAndVerifies(privateJwk: JWK, publicJwk: JWK): Promise<void> {
  const token = await new SignJWT({ sub: 'probe' })
    .setProtectedHeader({ alg: 'RS256', kid: privateJwk.kid! })
    .setIssuedAt()
    .sign(await importJWK(privateJwk, 'RS256'));
  const { payload, protectedHeader } = await jwtVerify(token, await importJWK(publicJwk, 'RS256'));
  expect(payload.sub).toBe('probe');
  expect(protectedHeader.kid).toBe(privateJwk.kid);
}

function storeOptions(store: TestStore): StoreOptions {
  return store.kind === 'postgres' ? { kind: 'postgres', url: store.url, poolMax: 5 } : { kind: 'embedded', dataDir: store.dataDir };
}

describe.each(STORE_KINDS)('keystore on the %s store', (kind) => {
  let store: TestStore;
  let database: Database<KeystoreTables>;
  /** Postgres: a second pool, as another process would have. Embedded: the same single connection. */
  let otherDatabase: Database<KeystoreTables>;
  let kek: Kek;

  const db = (): Kysely<KeystoreTables> => database.db;
  const keystore = (options: { kek?: Kek; policy?: RotationPolicy; on?: Kysely<KeystoreTables> } = {}): Keystore =>
    createKeystore(options.on ?? db(), { kek: options.kek ?? kek, policy: options.policy ?? LONG });

  const rows = () =>
    db()
      .selectFrom('signing_keys')
      .select(['kid', 'state', 'public_jwk', 'private_jwk', 'private_key_jwe', 'activates_at', 'retires_at', 'revoked_at'])
      .orderBy('created_at')
      .execute();
  const row = async (kid: string) => (await rows()).find((candidate) => candidate.kid === kid);
  const kekIdStored = async () => (await db().selectFrom('keystore_settings').select('kek_id').execute()).map((setting) => setting.kek_id);
  const databaseNow = async () => (await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db())).rows[0]!.now;
  const kidsIn = (state: string) => rows().then((all) => all.filter((r) => r.state === state).map((r) => r.kid));

  beforeAll(async () => {
    store = await createTestStore(kind);
    database = await openDatabase<KeystoreTables>(storeOptions(store));
    expect(database.kind).toBe(kind);
    await migrateToLatest(database.db);
    otherDatabase = kind === 'postgres' ? await openDatabase<KeystoreTables>(storeOptions(store)) : database;
  });

  afterAll(async () => {
    try {
      if (otherDatabase !== database) await otherDatabase?.close();
      await database?.close();
    } finally {
      await store?.drop();
    }
  });

  beforeEach(async () => {
    await db().deleteFrom('signing_keys').execute();
    await db().deleteFrom('keystore_settings').execute();
    kek = newKek();
  });

  it('open() creates one current key sealed under the KEK, records the KEK id, and is idempotent', async () => {
    const keys = keystore();
    const before = await databaseNow();
    const events = await keys.open();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ event: 'key.created', state: 'current' });
    near(events[0]!.activatesAt, before);
    const kid = events[0]!.kid;

    expect(await kekIdStored()).toEqual([kek.id]);
    const stored = await rows();
    expect(stored.map((r) => [r.kid, r.state])).toEqual([[kid, 'current']]);
    expect(stored[0]!.private_jwk).toBeNull();
    expect(stored[0]!.private_key_jwe).toEqual(expect.any(String));
    expect(decodeProtectedHeader(stored[0]!.private_key_jwe!)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: kek.id, skid: kid });
    expect(stored[0]!.public_jwk).toMatchObject({ kid, kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(stored[0]!.public_jwk).not.toHaveProperty('d');

    const signing = await keys.signingKeys();
    expect(signing.jwks.keys).toHaveLength(1);
    const [privateJwk] = signing.jwks.keys;
    expect(privateJwk).toMatchObject({ kid, kty: 'RSA', alg: 'RS256', use: 'sig', d: expect.any(String) });
    expect(privateJwk).not.toHaveProperty('key_ops');
    // The envelope holds exactly that key, and it pairs with the stored public key.
    expect(await openPrivateKey(stored[0]!.private_key_jwe!, kid, kek)).toStrictEqual(privateJwk);
    await signsAndVerifies(privateJwk!, stored[0]!.public_jwk);

    // Opening again, in this keystore or another one with the same KEK, changes nothing.
    expect(await keys.open()).toEqual([]);
    const again = keystore();
    expect(await again.open()).toEqual([]);
    expect((await again.signingKeys()).jwks.keys.map((jwk) => jwk.d)).toEqual([privateJwk!.d]);
    expect((await rows()).map((r) => r.kid)).toEqual([kid]);
    expect(await kekIdStored()).toEqual([kek.id]);
  });

  it('a keystore with another KEK fails open() with ERR_KEK_MISMATCH and changes nothing', async () => {
    await keystore().open();
    const before = await rows();
    const wrong = newKek();
    const stranger = keystore({ kek: wrong });

    const error = await rejection(stranger.open());
    expect(error.code).toBe('ERR_KEK_MISMATCH');
    expect(error.message).toContain(wrong.id);
    expect(error.message).toContain(kek.id);
    expect(error.message).toContain('key-encryption key');
    // Nor can it read the keys, rotate or revoke.
    expect((await rejection(stranger.signingKeys())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(stranger.rotateNow())).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(stranger.revoke(before[0]!.kid))).code).toBe('ERR_KEK_MISMATCH');
    expect((await rejection(stranger.rewrap(newKek()))).code).toBe('ERR_KEK_MISMATCH');

    expect(await rows()).toEqual(before);
    expect(await kekIdStored()).toEqual([kek.id]);
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
    expect(await kekIdStored()).toEqual([kek.id]);

    for (const key of [legacyCurrent, legacyRetired]) {
      const sealed = await row(key.kid);
      expect(sealed?.private_jwk).toBeNull();
      expect(sealed?.private_key_jwe).toEqual(expect.any(String));
      expect(sealed?.private_key_jwe).not.toContain(key.privateJwk.d);
      expect(await openPrivateKey(sealed!.private_key_jwe!, key.kid, kek)).toStrictEqual(key.privateJwk);
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

  it('rotateNow promotes: the old key retires but still verifies; the new key signs, first and without key_ops', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    const before = await keys.signingKeys();
    const now = await databaseNow();

    const events = await keys.rotateNow();
    expect(events.map((event) => event.event)).toEqual(['key.created', 'key.retired', 'key.promoted']);
    const second = events[0]!.kid;
    expect(second).not.toBe(first);
    expect(events[1]).toMatchObject({ kid: first, state: 'retired' });
    near(events[1]!.retiresAt, new Date(now.getTime() + LONG.retainSeconds * 1000));
    expect(events[2]).toMatchObject({ kid: second, state: 'current' });

    const listed = await keys.list();
    expect(listed.map((key) => [key.kid, key.state]).sort()).toEqual([
      [first, 'retired'],
      [second, 'current'],
    ].sort());
    near(listed.find((key) => key.kid === first)?.retiresAt ?? undefined, new Date(now.getTime() + LONG.retainSeconds * 1000));
    near(listed.find((key) => key.kid === second)?.activatesAt ?? undefined, now);

    for (const view of [keys, keystore()]) {
      const signing = await view.signingKeys();
      expect(signing.version).not.toBe(before.version);
      expect(signing.jwks.keys.map((jwk) => jwk.kid)).toEqual([second, first]);
      expect(signing.jwks.keys[0]).not.toHaveProperty('key_ops');
      expect(signing.jwks.keys[1]!.key_ops).toEqual(['verify']);
      // The retired key is the same key as before, still usable to verify what it signed.
      expect(signing.jwks.keys[1]!.d).toBe(before.jwks.keys[0]!.d);
    }
    const stored = await rows();
    for (const jwk of (await keys.signingKeys()).jwks.keys) {
      const { key_ops: _ops, ...privateJwk } = jwk;
      await signsAndVerifies(privateJwk, stored.find((r) => r.kid === jwk.kid)!.public_jwk);
    }
  });

  it('rotateIfDue follows the schedule: next key in the prepublication window, promotion when due, removal after retention', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    expect(await keys.rotateIfDue()).toEqual([]);

    // Due in 70 s; the next key is published from 60 s before that: not yet.
    await sql`update signing_keys set activates_at = now() - interval '3530 seconds' where kid = ${first}`.execute(db());
    expect(await keys.rotateIfDue()).toEqual([]);

    // Due in 55 s, inside the 60 s window: a next key, signing no earlier than 60 s from now.
    await sql`update signing_keys set activates_at = now() - interval '3545 seconds' where kid = ${first}`.execute(db());
    const now = await databaseNow();
    const created = await keys.rotateIfDue();
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ event: 'key.created', state: 'next' });
    near(created[0]!.activatesAt, new Date(now.getTime() + 60_000));
    const second = created[0]!.kid;
    expect(await kidsIn('next')).toEqual([second]);
    // The next key is published for verification only; the current one still signs.
    const published = await keys.signingKeys();
    expect(published.jwks.keys.map((jwk) => [jwk.kid, jwk.key_ops])).toEqual([
      [first, undefined],
      [second, ['verify']],
    ]);
    // Nothing more until its time comes.
    expect(await keys.rotateIfDue()).toEqual([]);

    await sql`update signing_keys set activates_at = now() - interval '1 second' where kid = ${second}`.execute(db());
    const promoted = await keys.rotateIfDue();
    expect(eventsOf(promoted)).toEqual([`key.retired ${first}`, `key.promoted ${second}`]);
    expect(await kidsIn('current')).toEqual([second]);
    expect(await kidsIn('retired')).toEqual([first]);

    // Retained until retires_at, then deleted.
    expect(await keys.rotateIfDue()).toEqual([]);
    await sql`update signing_keys set retires_at = now() - interval '1 second' where kid = ${first}`.execute(db());
    expect(eventsOf(await keys.rotateIfDue())).toEqual([`key.removed ${first}`]);
    expect((await rows()).map((r) => r.kid)).toEqual([second]);
    expect((await keys.signingKeys()).jwks.keys.map((jwk) => jwk.kid)).toEqual([second]);
  });

  it('rotateNow promotes the waiting next key rather than creating another', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    await sql`update signing_keys set activates_at = now() - interval '3590 seconds' where kid = ${first}`.execute(db());
    const [created] = await keys.rotateIfDue();
    expect(created).toMatchObject({ event: 'key.created', state: 'next' });

    expect(eventsOf(await keys.rotateNow())).toEqual([`key.retired ${first}`, `key.promoted ${created!.kid}`]);
    expect((await rows()).map((r) => [r.kid, r.state])).toEqual([
      [first, 'retired'],
      [created!.kid, 'current'],
    ]);
  });

  it('revoke of the current key: no longer published, private key erased, a new current key signs', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    const second = (await keys.rotateNow()).find((event) => event.event === 'key.promoted')!.kid;

    const events = await keys.revoke(second);
    expect(events.map((event) => event.event)).toEqual(['key.revoked', 'key.created']);
    expect(events[0]).toMatchObject({ kid: second, state: 'revoked' });
    expect(events[1]).toMatchObject({ state: 'current' });
    const third = events[1]!.kid;
    expect([first, second]).not.toContain(third);

    for (const view of [keys, keystore()]) {
      const kids = (await view.signingKeys()).jwks.keys.map((jwk) => jwk.kid);
      expect(kids).toEqual([third, first]);
    }
    const revoked = await row(second);
    expect(revoked).toMatchObject({ state: 'revoked', private_key_jwe: null, private_jwk: null, retires_at: null });
    expect(revoked?.revoked_at).toBeInstanceOf(Date);
    const listed = (await keys.list()).find((key) => key.kid === second);
    expect(listed).toMatchObject({ state: 'revoked' });
    expect(listed?.revokedAt).toBeInstanceOf(Date);
    expect(await kidsIn('current')).toEqual([third]);
  });

  it('revoke of the current key while a next key waits promotes that key', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    await sql`update signing_keys set activates_at = now() - interval '3590 seconds' where kid = ${first}`.execute(db());
    const [created] = await keys.rotateIfDue();
    expect(created).toMatchObject({ event: 'key.created', state: 'next' });

    expect(eventsOf(await keys.revoke(first))).toEqual([`key.revoked ${first}`, `key.promoted ${created!.kid}`]);
    expect((await keys.signingKeys()).jwks.keys.map((jwk) => [jwk.kid, jwk.key_ops])).toEqual([[created!.kid, undefined]]);
  });

  it('revoke of an unknown or already revoked kid fails with ERR_KEY_NOT_FOUND and changes nothing', async () => {
    const keys = keystore();
    const [{ kid }] = (await keys.open()) as [KeyEvent];
    const unknown = await rejection(keys.revoke('no-such-kid'));
    expect(unknown.code).toBe('ERR_KEY_NOT_FOUND');
    expect(unknown.message).toContain('no-such-kid');
    expect((await rows()).map((r) => [r.kid, r.state])).toEqual([[kid, 'current']]);

    await keys.revoke(kid);
    const before = await rows();
    expect((await rejection(keys.revoke(kid))).code).toBe('ERR_KEY_NOT_FOUND');
    expect(await rows()).toEqual(before);
  });

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
      expect((await rejection(openPrivateKey(stored.private_key_jwe!, stored.kid, kek))).code).toBe('ERR_KEK_MISMATCH');
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

  it('columnCipher: values are sealed under a data key that is itself sealed under the KEK, and rewrap keeps them readable', async () => {
    const keys = keystore();
    const cipher = await keys.columnCipher();
    const sealed = await cipher.seal('s3cret-value', 'client_secret:web');
    expect(sealed).not.toContain('s3cret-value');
    // Each value names the data key, not the KEK; the data key is stored only as a JWE under the KEK.
    expect(decodeProtectedHeader(sealed)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: cipher.id, ctx: 'client_secret:web' });
    const settings = await db().selectFrom('keystore_settings').select(['kek_id', 'column_key_jwe']).executeTakeFirstOrThrow();
    expect(settings.kek_id).toBe(kek.id);
    expect(decodeProtectedHeader(settings.column_key_jwe!)).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', kid: kek.id, ctx: 'column-key' });
    expect(await cipher.open(sealed, 'client_secret:web')).toBe('s3cret-value');
    expect((await rejection(cipher.open(sealed, 'client_secret:other'))).code).toBe('ERR_ENVELOPE_INVALID');

    // Another process with the same KEK reads the same data key rather than making a second one.
    const again = await keystore().columnCipher();
    expect(again.id).toBe(cipher.id);
    expect(await again.open(sealed, 'client_secret:web')).toBe('s3cret-value');
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

  it('two keystores racing rotateIfDue() apply each due change once: one next key, one promotion', async () => {
    // Warm both pools so that the two calls really start together.
    await Promise.all([sql`select 1`.execute(db()), sql`select 1`.execute(otherDatabase.db)]);
    const one = keystore({ policy: TINY });
    const two = keystore({ policy: TINY, on: otherDatabase.db });
    const [{ kid: first }] = (await one.open()) as [KeyEvent];
    const history: KeyEvent[] = [];

    /** Both keystores at once. Each call applies at most one rotation step, so a race never yields two of a kind. */
    async function race(): Promise<KeyEvent[][]> {
      const results = await Promise.all([one.rotateIfDue(), two.rotateIfDue()]);
      const events = results.flat();
      const count = (name: KeyEvent['event']) => events.filter((event) => event.event === name).length;
      expect(count('key.created'), eventsOf(events).join(', ')).toBeLessThanOrEqual(1);
      expect(count('key.promoted'), eventsOf(events).join(', ')).toBeLessThanOrEqual(1);
      expect(count('key.retired')).toBe(count('key.promoted'));
      expect(await kidsIn('current')).toHaveLength(1);
      expect((await kidsIn('next')).length).toBeLessThanOrEqual(1);
      history.push(...events);
      return results;
    }

    // With a 1 s rotation a next key is due at once: exactly one is created. (Under load the second
    // call may start after that key's activation and promote it: one promotion, of that key.)
    const round1 = await race();
    const creator = round1.findIndex((events) => events.some((event) => event.event === 'key.created'));
    expect(creator).toBeGreaterThanOrEqual(0);
    expect(round1[creator]!.map((event) => `${event.event} ${event.state}`)).toEqual(['key.created next']);
    const second = round1[creator]![0]!.kid;
    const late = round1[1 - creator]!;
    expect(eventsOf(late)).toEqual(late.length > 0 ? [`key.retired ${first}`, `key.promoted ${second}`] : []);

    if (!history.some((event) => event.event === 'key.promoted')) {
      // Wait (for real) until the next key's activation time has passed by the database clock.
      const activatesAt = (await row(second))!.activates_at!;
      await sleep(Math.max(0, activatesAt.getTime() - (await databaseNow()).getTime()) + 150);
      const round2 = (await race()).flat();
      expect(round2.filter((event) => event.event !== 'key.created').map((event) => `${event.event} ${event.kid}`)).toEqual([
        `key.retired ${first}`,
        `key.promoted ${second}`,
      ]);
    }
    // One more race: the new current key's next is due at once, and is created once at most.
    await race();

    // Over all the races the keys form one chain: `second` replaced `first`, and (when the machine is
    // so slow that a later next key came due too) each later promotion replaced the previous current
    // key with a key created earlier. No key was created twice, promoted twice or retired twice.
    const promoted = history.filter((event) => event.event === 'key.promoted').map((event) => event.kid);
    const retired = history.filter((event) => event.event === 'key.retired').map((event) => event.kid);
    const createdKids = history.filter((event) => event.event === 'key.created').map((event) => event.kid);
    expect(promoted[0]).toBe(second);
    expect(retired).toEqual([first, ...promoted.slice(0, -1)]);
    expect(promoted.every((kid) => createdKids.includes(kid))).toBe(true);
    expect(new Set(createdKids).size).toBe(createdKids.length);
    expect(new Set(promoted).size).toBe(promoted.length);
    expect(await kidsIn('current')).toEqual([promoted.at(-1)]);
    expect((await kidsIn('retired')).sort()).toEqual([...retired].sort());
    const stored = await rows();
    expect(stored).toHaveLength(1 + createdKids.length);
    expect(stored.map((r) => r.kid).sort()).toEqual([first, ...createdKids].sort());
  });

  if (kind === 'postgres') {
    it('a pg_dump of the database holds no private key material', async () => {
      const keys = keystore();
      await keys.open();
      await keys.rotateNow();
      const privateJwks = (await keys.signingKeys()).jwks.keys;
      expect(privateJwks).toHaveLength(2);
      if (store.kind !== 'postgres') throw new Error('expected a Postgres store');

      const { stdout: dump } = await run('pg_dump', ['--data-only', '--no-owner', `--dbname=${store.url}`], { maxBuffer: 64 * 1024 * 1024 });
      // The dump does hold the keystore's rows: the kids, the public keys and the KEK id.
      expect(dump).toMatch(/COPY public\.signing_keys /);
      expect(dump).toContain(kek.id);
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
      expect(dump).not.toContain(Buffer.from(kek.key).toString('base64'));
      expect(dump).not.toContain(Buffer.from(kek.key).toString('base64url'));
    });
  }
});
