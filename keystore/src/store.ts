import { sql, type Kysely } from 'kysely';
import type { JWK } from 'jose';
import { generateSigningKey, SIGNING_ALG } from './generate.ts';
import type { KeyState, KeystoreTables } from './tables.ts';

export interface KeyInfo {
  kid: string;
  alg: string;
  state: KeyState;
  createdAt: Date;
  activatesAt: Date | null;
  retiresAt: Date | null;
}

// One lock name for every keystore change, so concurrent processes create at most one current key.
const LOCK = sql`select pg_advisory_xact_lock(hashtext('jobswipe.keystore'))`;

const stateOrder = { current: 0, next: 1, retired: 2 } as const;

export interface Keystore {
  /** Creates the first signing key if the database has none; safe to call from many processes at once. */
  ensureSigningKey(): Promise<void>;
  /** Private JWKs for the provider: the current key first (it signs), then the others (published only). */
  signingJwks(): Promise<{ keys: JWK[] }>;
  /** Every stored key, current first. */
  list(): Promise<KeyInfo[]>;
}

export function createKeystore(db: Kysely<KeystoreTables>): Keystore {
  return {
    async ensureSigningKey() {
      await db.transaction().execute(async (trx) => {
        await LOCK.execute(trx);
        const current = await trx
          .selectFrom('signing_keys')
          .select('kid')
          .where('state', '=', 'current')
          .executeTakeFirst();
        if (current) return;
        const key = await generateSigningKey();
        await trx
          .insertInto('signing_keys')
          .values({
            kid: key.kid,
            alg: SIGNING_ALG,
            state: 'current',
            public_jwk: JSON.stringify(key.publicJwk),
            private_jwk: JSON.stringify(key.privateJwk),
            activates_at: new Date(),
            retires_at: null,
          })
          .execute();
      });
    },

    async signingJwks() {
      const rows = await db.selectFrom('signing_keys').select(['state', 'private_jwk']).execute();
      rows.sort((a, b) => stateOrder[a.state] - stateOrder[b.state]);
      return { keys: rows.map((row) => row.private_jwk) };
    },

    async list() {
      const rows = await db.selectFrom('signing_keys').selectAll().execute();
      rows.sort((a, b) => stateOrder[a.state] - stateOrder[b.state] || b.created_at.getTime() - a.created_at.getTime());
      return rows.map((row) => ({
        kid: row.kid,
        alg: row.alg,
        state: row.state,
        createdAt: row.created_at,
        activatesAt: row.activates_at,
        retiresAt: row.retires_at,
      }));
    },
  };
}
