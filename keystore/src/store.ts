import { createHash, randomBytes } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { JWK } from 'jose';
import { openPrivateKey, sealPrivateKey } from './encrypt.ts';
import { openValue, sealValue } from './fields.ts';
import { KeystoreError } from './errors.ts';
import { generateSigningKey, SIGNING_ALG } from './generate.ts';
import type { Kek } from './kek.ts';
import { planRotation, publishedKeys, type KeyRecord, type RotationPolicy, type Transition } from './lifecycle.ts';
import type { KeystoreTables } from './tables.ts';

export interface KeyInfo extends KeyRecord {
  alg: string;
  revokedAt: Date | null;
}

/** One thing that happened to a key; every change is reported, for the log and the audit trail. */
export interface KeyEvent {
  event: 'key.created' | 'key.promoted' | 'key.retired' | 'key.removed' | 'key.revoked' | 'key.sealed' | 'key.rewrapped';
  kid: string;
  state?: KeyInfo['state'];
  activatesAt?: Date;
  retiresAt?: Date;
}

/** Seals values bound to a context (e.g. `client_secret:<client_id>`); see fields.ts. */
export interface ColumnCipher {
  /** The data key's fingerprint, named in every value it seals. */
  readonly id: string;
  seal(plaintext: string, context: string): Promise<string>;
  open(sealed: string, context: string): Promise<string>;
}

const COLUMN_KEY_CONTEXT = 'column-key';

/** The data key as a key that sealValue/openValue use, named like a KEK by its fingerprint. */
function dataKey(secret: string): Kek {
  const key = Buffer.from(secret, 'base64url');
  if (key.length !== 32) throw new KeystoreError('ERR_ENVELOPE_INVALID', 'the stored column data key is not 32 bytes');
  const id = `dek-${createHash('sha256').update('jobswipe column key id\0').update(key).digest('base64url').slice(0, 16)}`;
  return { id, key: new Uint8Array(key) };
}

export interface SigningKeys {
  /** Changes whenever the set of published keys or their states change. */
  version: string;
  /** Private JWKs for the provider: the current key first and the only one allowed to sign. */
  jwks: { keys: JWK[] };
}

export interface Keystore {
  /** Checks the KEK against the database, seals keys stored in the clear, creates the first key. */
  open(): Promise<KeyEvent[]>;
  /** Applies the scheduled rotation if it is due; a no-op in every process but the one holding the lock. */
  rotateIfDue(now?: Date): Promise<KeyEvent[]>;
  /** The next key (created first if there is none) becomes current now. */
  rotateNow(): Promise<KeyEvent[]>;
  /** Removes a key from publication for good; if it was signing, another key signs from now on. */
  revoke(kid: string): Promise<KeyEvent[]>;
  /** Seals every private key under a new KEK; the database then expects that KEK. */
  rewrap(newKek: Kek): Promise<KeyEvent[]>;
  /**
   * Seals and opens sensitive column values (AES-256-GCM) under the data key, which is itself
   * sealed under the KEK; creates the data key on first use. The opened key is kept for the life of
   * this keystore, so a rewrap by another process does not disturb it.
   */
  columnCipher(): Promise<ColumnCipher>;
  list(): Promise<KeyInfo[]>;
  signingKeys(): Promise<SigningKeys>;
}

// Every keystore change happens under this lock, so concurrent processes never both rotate.
const LOCK_KEY = sql`hashtext('jobswipe.keystore')`;

type Db = Kysely<KeystoreTables>;
type Trx = Transaction<KeystoreTables>;

function toInfo(row: {
  kid: string;
  alg: string;
  state: KeyInfo['state'];
  created_at: Date;
  activates_at: Date | null;
  retires_at: Date | null;
  revoked_at: Date | null;
}): KeyInfo {
  return {
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    createdAt: row.created_at,
    activatesAt: row.activates_at,
    retiresAt: row.retires_at,
    revokedAt: row.revoked_at,
  };
}

async function readKeys(db: Db | Trx): Promise<KeyInfo[]> {
  const rows = await db
    .selectFrom('signing_keys')
    .select(['kid', 'alg', 'state', 'created_at', 'activates_at', 'retires_at', 'revoked_at'])
    .orderBy('created_at', 'desc')
    .execute();
  return rows.map(toInfo);
}

async function databaseNow(trx: Trx): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(trx);
  return rows[0]!.now;
}

export function createKeystore(db: Db, options: { kek: Kek; policy: RotationPolicy }): Keystore {
  const { kek, policy } = options;
  const opened = new Map<string, JWK>();

  async function insertKey(trx: Trx, state: 'current' | 'next', activatesAt: Date): Promise<KeyEvent> {
    const key = await generateSigningKey();
    await trx
      .insertInto('signing_keys')
      .values({
        kid: key.kid,
        alg: SIGNING_ALG,
        state,
        public_jwk: JSON.stringify(key.publicJwk),
        private_jwk: null,
        private_key_jwe: await sealPrivateKey(key.privateJwk, key.kid, kek),
        activates_at: activatesAt,
        retires_at: null,
        revoked_at: null,
      })
      .execute();
    opened.set(key.kid, key.privateJwk);
    return { event: 'key.created', kid: key.kid, state, activatesAt };
  }

  async function apply(trx: Trx, transitions: Transition[], now: Date): Promise<KeyEvent[]> {
    const events: KeyEvent[] = [];
    for (const transition of transitions) {
      switch (transition.type) {
        case 'create-current':
          events.push(await insertKey(trx, 'current', now));
          break;
        case 'create-next':
          events.push(await insertKey(trx, 'next', transition.activatesAt));
          break;
        case 'promote':
          if (transition.retire) {
            await trx
              .updateTable('signing_keys')
              .set({ state: 'retired', retires_at: transition.retiresAt })
              .where('kid', '=', transition.retire)
              .execute();
            events.push({ event: 'key.retired', kid: transition.retire, state: 'retired', retiresAt: transition.retiresAt });
          }
          await trx.updateTable('signing_keys').set({ state: 'current', activates_at: now }).where('kid', '=', transition.kid).execute();
          events.push({ event: 'key.promoted', kid: transition.kid, state: 'current', activatesAt: now });
          break;
        case 'remove':
          await trx.deleteFrom('signing_keys').where('kid', '=', transition.kid).execute();
          opened.delete(transition.kid);
          events.push({ event: 'key.removed', kid: transition.kid });
          break;
      }
    }
    return events;
  }

  async function assertCurrentKek(trx: Trx): Promise<void> {
    const settings = await trx.selectFrom('keystore_settings').select('kek_id').executeTakeFirst();
    if (settings && settings.kek_id !== kek.id) {
      throw new KeystoreError(
        'ERR_KEK_MISMATCH',
        `the configured key-encryption key (${kek.id}) is not the one the signing keys are sealed with (${settings.kek_id}); set KEYSTORE_KEK or KEYSTORE_KEK_FILE to that key`,
      );
    }
  }

  /** Runs fn in a transaction holding the keystore lock; `wait: false` gives up if another process holds it. */
  async function locked<T>(fn: (trx: Trx) => Promise<T>, wait = true): Promise<T | undefined> {
    return db.transaction().execute(async (trx) => {
      if (wait) {
        await sql`select pg_advisory_xact_lock(${LOCK_KEY})`.execute(trx);
      } else {
        const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${LOCK_KEY}) as locked`.execute(trx);
        if (!rows[0]?.locked) return undefined;
      }
      await assertCurrentKek(trx);
      return fn(trx);
    });
  }

  let columns: Promise<ColumnCipher> | undefined;

  async function readColumnKey(): Promise<Kek> {
    let settings = await db.selectFrom('keystore_settings').select(['kek_id', 'column_key_jwe']).executeTakeFirst();
    if (!settings?.column_key_jwe) {
      await locked(async (trx) => {
        await trx
          .insertInto('keystore_settings')
          .values({ kek_id: kek.id })
          .onConflict((conflict) => conflict.column('singleton').doNothing())
          .execute();
        const fresh = randomBytes(32).toString('base64url');
        await trx
          .updateTable('keystore_settings')
          .set({ column_key_jwe: await sealValue(fresh, COLUMN_KEY_CONTEXT, kek) })
          .where('column_key_jwe', 'is', null)
          .execute();
      });
      settings = await db.selectFrom('keystore_settings').select(['kek_id', 'column_key_jwe']).executeTakeFirst();
    }
    if (settings!.kek_id !== kek.id) {
      throw new KeystoreError(
        'ERR_KEK_MISMATCH',
        `the configured key-encryption key (${kek.id}) is not the one the column data key is sealed with (${settings!.kek_id}); set KEYSTORE_KEK or KEYSTORE_KEK_FILE to that key`,
      );
    }
    return dataKey(await openValue(settings!.column_key_jwe!, COLUMN_KEY_CONTEXT, kek));
  }

  async function rotate(trx: Trx): Promise<KeyEvent[]> {
    const now = await databaseNow(trx);
    const keys = (await readKeys(trx)).filter((key) => key.state !== 'revoked');
    return apply(trx, planRotation(keys, now, policy), now);
  }

  return {
    async open() {
      const events = await db.transaction().execute(async (trx) => {
        await sql`select pg_advisory_xact_lock(${LOCK_KEY})`.execute(trx);
        await assertCurrentKek(trx);
        await trx
          .insertInto('keystore_settings')
          .values({ kek_id: kek.id })
          .onConflict((conflict) => conflict.column('singleton').doNothing())
          .execute();
        const sealed: KeyEvent[] = [];
        const legacy = await trx.selectFrom('signing_keys').select(['kid', 'private_jwk']).where('private_jwk', 'is not', null).execute();
        for (const row of legacy) {
          await trx
            .updateTable('signing_keys')
            .set({ private_key_jwe: await sealPrivateKey(row.private_jwk!, row.kid, kek), private_jwk: null })
            .where('kid', '=', row.kid)
            .execute();
          sealed.push({ event: 'key.sealed', kid: row.kid });
        }
        return [...sealed, ...(await rotate(trx))];
      });
      // Fail now, with the keystore's message, if the current key cannot be opened.
      await this.signingKeys();
      return events;
    },

    async rotateIfDue() {
      return (await locked(rotate, false)) ?? [];
    },

    async rotateNow() {
      return (await locked(async (trx) => {
        const now = await databaseNow(trx);
        const keys = await readKeys(trx);
        const current = keys.find((key) => key.state === 'current');
        const events: KeyEvent[] = [];
        let next = keys.find((key) => key.state === 'next')?.kid;
        if (!next) {
          const created = await insertKey(trx, 'next', now);
          events.push(created);
          next = created.kid;
        }
        const retiresAt = new Date(now.getTime() + policy.retainSeconds * 1000);
        return [...events, ...(await apply(trx, [{ type: 'promote', kid: next, retire: current?.kid, retiresAt }], now))];
      }))!;
    },

    async revoke(kid) {
      return (await locked(async (trx) => {
        const key = (await readKeys(trx)).find((candidate) => candidate.kid === kid);
        if (!key || key.state === 'revoked') {
          throw new KeystoreError('ERR_KEY_NOT_FOUND', `no published signing key has kid ${kid}`);
        }
        await trx
          .updateTable('signing_keys')
          .set({ state: 'revoked', revoked_at: sql<Date>`now()`, private_key_jwe: null, private_jwk: null, retires_at: null })
          .where('kid', '=', kid)
          .execute();
        opened.delete(kid);
        const events: KeyEvent[] = [{ event: 'key.revoked', kid, state: 'revoked' }];
        // If it was signing, the next key (or a new one) signs from now on.
        return [...events, ...(await rotate(trx))];
      }))!;
    },

    async rewrap(newKek) {
      return (await locked(async (trx) => {
        const rows = await trx
          .selectFrom('signing_keys')
          .select(['kid', 'private_jwk', 'private_key_jwe'])
          .where('state', '!=', 'revoked')
          .execute();
        const events: KeyEvent[] = [];
        for (const row of rows) {
          const privateJwk = row.private_key_jwe ? await openPrivateKey(row.private_key_jwe, row.kid, kek) : row.private_jwk!;
          await trx
            .updateTable('signing_keys')
            .set({ private_key_jwe: await sealPrivateKey(privateJwk, row.kid, newKek), private_jwk: null })
            .where('kid', '=', row.kid)
            .execute();
          events.push({ event: 'key.rewrapped', kid: row.kid });
        }
        // The column data key moves to the new KEK in the same transaction; the values it seals stay as they are.
        const settings = await trx.selectFrom('keystore_settings').select('column_key_jwe').executeTakeFirst();
        const columnKey = settings?.column_key_jwe
          ? await sealValue(await openValue(settings.column_key_jwe, COLUMN_KEY_CONTEXT, kek), COLUMN_KEY_CONTEXT, newKek)
          : null;
        await trx
          .insertInto('keystore_settings')
          .values({ kek_id: newKek.id, column_key_jwe: columnKey })
          .onConflict((conflict) =>
            conflict.column('singleton').doUpdateSet({ kek_id: newKek.id, column_key_jwe: columnKey, updated_at: sql<Date>`now()` }),
          )
          .execute();
        return events;
      }))!;
    },

    columnCipher() {
      columns ??= readColumnKey().then(
        (key) => ({
          id: key.id,
          seal: (plaintext: string, context: string) => sealValue(plaintext, context, key),
          open: (sealed: string, context: string) => openValue(sealed, context, key),
        }),
        (error: unknown) => {
          columns = undefined;
          throw error;
        },
      );
      return columns;
    },

    list: () => readKeys(db),

    async signingKeys() {
      const rows = await db
        .selectFrom('signing_keys')
        .select(['kid', 'alg', 'state', 'created_at', 'activates_at', 'retires_at', 'revoked_at', 'private_key_jwe', 'private_jwk'])
        .where('state', '!=', 'revoked')
        .execute();
      const keys = publishedKeys(rows.map((row) => ({ ...toInfo(row), envelope: row.private_key_jwe, legacy: row.private_jwk })));
      const jwks: JWK[] = [];
      for (const key of keys) {
        let privateJwk = opened.get(key.kid);
        if (!privateJwk) {
          privateJwk = key.envelope ? await openPrivateKey(key.envelope, key.kid, kek) : key.legacy!;
          opened.set(key.kid, privateJwk);
        }
        // Only the current key may sign; the others are published for verification only.
        jwks.push(key.state === 'current' ? privateJwk : { ...privateJwk, key_ops: ['verify'] });
      }
      return { version: keys.map((key) => `${key.kid}:${key.state}`).join(','), jwks: { keys: jwks } };
    },
  };
}
