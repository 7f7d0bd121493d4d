import { sql, type Kysely } from 'kysely';
import type { JWK } from 'jose';
import { SIGNING_ALG } from './generate.ts';
import type { KeyRecord, KeyState } from './lifecycle.ts';
import type { KeystoreTables } from './tables.ts';

/** Every query runs on the database or inside a transaction (a Transaction is a Kysely). */
export type KeystoreDb = Kysely<KeystoreTables>;

export interface KeyInfo extends KeyRecord {
  alg: string;
  revokedAt: Date | null;
}

const INFO_COLUMNS = ['kid', 'alg', 'state', 'created_at', 'activates_at', 'retires_at', 'revoked_at'] as const;

function toInfo(row: {
  kid: string;
  alg: string;
  state: KeyState;
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

// Every keystore change happens under this lock, so concurrent processes never both rotate.
const LOCK_KEY = sql`hashtext('jobswipe.keystore')`;

export async function waitForLock(trx: KeystoreDb): Promise<void> {
  await sql`select pg_advisory_xact_lock(${LOCK_KEY})`.execute(trx);
}

/** Whether the lock was free and is now held until the transaction ends. */
export async function tryLock(trx: KeystoreDb): Promise<boolean> {
  const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${LOCK_KEY}) as locked`.execute(trx);
  return rows[0]?.locked === true;
}

/** The database clock when the transaction began (what the schedule is planned against). */
export async function databaseNow(trx: KeystoreDb): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select now() as now`.execute(trx);
  return rows[0]!.now;
}

/** The database clock at this statement, later than databaseNow by whatever the transaction has done. */
export async function databaseClock(trx: KeystoreDb): Promise<Date> {
  const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(trx);
  return rows[0]!.now;
}

/** Every key, revoked ones included, newest first. */
export async function readKeys(db: KeystoreDb): Promise<KeyInfo[]> {
  const rows = await db.selectFrom('signing_keys').select(INFO_COLUMNS).orderBy('created_at', 'desc').execute();
  return rows.map(toInfo);
}

/** The keys that are not revoked, with their private key (an envelope, or in the clear before envelopes existed). */
export async function readPrivateKeys(db: KeystoreDb): Promise<Array<KeyInfo & { envelope: string | null; legacy: JWK | null }>> {
  const rows = await db
    .selectFrom('signing_keys')
    .select([...INFO_COLUMNS, 'private_key_jwe', 'private_jwk'])
    .where('state', '!=', 'revoked')
    .execute();
  return rows.map((row) => ({ ...toInfo(row), envelope: row.private_key_jwe, legacy: row.private_jwk }));
}

/** Keys written before envelopes existed: their private key is still in the clear. */
export async function readLegacyKeys(trx: KeystoreDb): Promise<Array<{ kid: string; privateJwk: JWK }>> {
  const rows = await trx.selectFrom('signing_keys').select(['kid', 'private_jwk']).where('private_jwk', 'is not', null).execute();
  return rows.map((row) => ({ kid: row.kid, privateJwk: row.private_jwk! }));
}

export async function insertKey(
  trx: KeystoreDb,
  key: { kid: string; state: 'current' | 'next'; publicJwk: JWK; envelope: string; activatesAt: Date },
): Promise<void> {
  await trx
    .insertInto('signing_keys')
    .values({
      kid: key.kid,
      alg: SIGNING_ALG,
      state: key.state,
      public_jwk: JSON.stringify(key.publicJwk),
      private_jwk: null,
      private_key_jwe: key.envelope,
      activates_at: key.activatesAt,
      retires_at: null,
      revoked_at: null,
    })
    .execute();
}

/** Stores a key's private key as an envelope, clearing any copy in the clear. */
export async function storeEnvelope(trx: KeystoreDb, kid: string, envelope: string): Promise<void> {
  await trx.updateTable('signing_keys').set({ private_key_jwe: envelope, private_jwk: null }).where('kid', '=', kid).execute();
}

export async function retireKey(trx: KeystoreDb, kid: string, retiresAt: Date): Promise<void> {
  await trx.updateTable('signing_keys').set({ state: 'retired', retires_at: retiresAt }).where('kid', '=', kid).execute();
}

export async function promoteKey(trx: KeystoreDb, kid: string, now: Date): Promise<void> {
  await trx.updateTable('signing_keys').set({ state: 'current', activates_at: now }).where('kid', '=', kid).execute();
}

export async function deleteKey(trx: KeystoreDb, kid: string): Promise<void> {
  await trx.deleteFrom('signing_keys').where('kid', '=', kid).execute();
}

/** Revoked for good: the private key is erased, the row stays to be listed. */
export async function revokeKey(trx: KeystoreDb, kid: string): Promise<void> {
  await trx
    .updateTable('signing_keys')
    .set({ state: 'revoked', revoked_at: sql<Date>`now()`, private_key_jwe: null, private_jwk: null, retires_at: null })
    .where('kid', '=', kid)
    .execute();
}

/** Which KEK the database expects, and the column data key sealed under it; undefined before first use. */
export async function readSettings(db: KeystoreDb): Promise<{ kekId: string; columnKeyEnvelope: string | null } | undefined> {
  const settings = await db.selectFrom('keystore_settings').select(['kek_id', 'column_key_jwe']).executeTakeFirst();
  return settings && { kekId: settings.kek_id, columnKeyEnvelope: settings.column_key_jwe };
}

/** Records the KEK on first use; later calls keep the one recorded. */
export async function recordKek(trx: KeystoreDb, kekId: string): Promise<void> {
  await trx
    .insertInto('keystore_settings')
    .values({ kek_id: kekId })
    .onConflict((conflict) => conflict.column('singleton').doNothing())
    .execute();
}

/** Stores the column data key unless another process stored one first. */
export async function storeColumnKeyIfUnset(trx: KeystoreDb, envelope: string): Promise<void> {
  await trx.updateTable('keystore_settings').set({ column_key_jwe: envelope }).where('column_key_jwe', 'is', null).execute();
}

/** The database expects the new KEK from now on, with the column data key sealed under it. */
export async function replaceKek(trx: KeystoreDb, kekId: string, columnKeyEnvelope: string | null): Promise<void> {
  await trx
    .insertInto('keystore_settings')
    .values({ kek_id: kekId, column_key_jwe: columnKeyEnvelope })
    .onConflict((conflict) =>
      conflict.column('singleton').doUpdateSet({ kek_id: kekId, column_key_jwe: columnKeyEnvelope, updated_at: sql<Date>`now()` }),
    )
    .execute();
}
