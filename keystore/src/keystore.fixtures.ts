import { randomBytes } from 'node:crypto';
import { importJWK, jwtVerify, SignJWT, type JWK } from 'jose';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import { openDatabase, type Database, type StoreOptions } from '@jobswipe/adapters';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, type StoreKind, type TestStore } from '../../test/support/stores.ts';
import type { KeyEvent } from './context.ts';
import { KeystoreError } from './errors.ts';
import { parseKek, type Kek } from './kek.ts';
import { createKeystore, type Keystore } from './keystore.ts';
import type { RotationPolicy } from './lifecycle.ts';
import type { KeystoreTables } from './tables.ts';

// What the keystore's operation tests share: policies, assertions, and a keystore on a fresh store of each kind.

export const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'] as const;
/** Nothing is due for an hour; a next key is published a minute before it signs. */
export const LONG: RotationPolicy = { rotationSeconds: 3600, prepublishSeconds: 60, retainSeconds: 600 };
/** Everything is due at once: a next key right after start, signing a second later. */
export const TINY: RotationPolicy = { rotationSeconds: 1, prepublishSeconds: 1, retainSeconds: 60 };

export const newKek = () => parseKek(randomBytes(32).toString('base64'));

/** The code of the KeystoreError `fn` throws; fails the test if it returns or throws anything else. */
export function codeOfSync(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(KeystoreError);
    return (error as KeystoreError).code;
  }
  throw new Error('expected an exception');
}

/** The KeystoreError a promise rejects with; fails the test if it resolves or rejects with anything else. */
export async function rejection(promise: Promise<unknown>): Promise<KeystoreError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(KeystoreError);
    return error as KeystoreError;
  }
  throw new Error('expected a KeystoreError');
}

export const eventsOf = (events: KeyEvent[]) => events.map((event) => `${event.event} ${event.kid}`);
export const near = (actual: Date | undefined, expected: Date, toleranceMs = 2_000) => {
  expect(actual).toBeInstanceOf(Date);
  expect(Math.abs(actual!.getTime() - expected.getTime()), `${actual?.toISOString()} vs ${expected.toISOString()}`).toBeLessThanOrEqual(toleranceMs);
};

/** Signs a JWT with the private JWK and verifies it with the public JWK: proves the two are a pair. */
export async function signsAndVerifies(privateJwk: JWK, publicJwk: JWK): Promise<void> {
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

/**
 * Registers the hooks of a suite on a fresh store of the given kind (emptied, with a new KEK, before
 * each test) and returns what its tests use.
 */
export function keystoreOnStore(kind: StoreKind) {
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

  return {
    get store() {
      return store;
    },
    get kek() {
      return kek;
    },
    /** Postgres: a second pool, as another process would have. Embedded: the same single connection. */
    otherDb: () => otherDatabase.db,
    db,
    keystore,
    rows,
    row,
    kekIdStored,
    databaseNow,
    kidsIn,
  };
}
