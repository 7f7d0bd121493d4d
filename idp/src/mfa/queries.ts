import { sql, type Kysely, type Selectable } from 'kysely';
import type { MfaTables, PasskeysTable, TotpFactorsTable } from './tables.ts';

export type TotpFactor = Selectable<TotpFactorsTable>;
export type PasskeyRow = Selectable<PasskeysTable>;

/** The rows of a user's factors: an authenticator app, its recovery codes, passkeys. */
export function createMfaQueries(db: Kysely<MfaTables>) {
  return {
    /** Whether the app is on, and how many unused recovery codes and passkeys: one round trip (every password sign-in asks). */
    async factorCounts(userId: string): Promise<{ totp: boolean; recoveryCodes: number; passkeys: number }> {
      const row = await db
        .selectNoFrom((eb) => [
          eb.exists(eb.selectFrom('totp_factors').select('user_id').where('user_id', '=', userId).where('enabled_at', 'is not', null)).as('totp'),
          eb.selectFrom('recovery_codes').select((inner) => inner.fn.countAll<string | number>().as('count')).where('user_id', '=', userId).where('used_at', 'is', null).as('recovery_codes'),
          eb.selectFrom('passkeys').select((inner) => inner.fn.countAll<string | number>().as('count')).where('user_id', '=', userId).as('passkeys'),
        ])
        .executeTakeFirstOrThrow();
      return { totp: Boolean(row.totp), recoveryCodes: Number(row.recovery_codes ?? 0), passkeys: Number(row.passkeys ?? 0) };
    },

    async totpOf(userId: string): Promise<TotpFactor | undefined> {
      return db.selectFrom('totp_factors').selectAll().where('user_id', '=', userId).executeTakeFirst();
    },

    /** A new set-up waiting for its first code; replaces a pending one, never an enabled one. */
    async savePendingTotp(userId: string, secretSealed: string): Promise<boolean> {
      const saved = await db
        .insertInto('totp_factors')
        .values({ user_id: userId, secret_sealed: secretSealed })
        .onConflict((conflict) =>
          conflict
            .column('user_id')
            .doUpdateSet({ secret_sealed: secretSealed, created_at: sql<Date>`now()`, last_time_step: null })
            .where('totp_factors.enabled_at', 'is', null),
        )
        .returning('user_id')
        .executeTakeFirst();
      return saved !== undefined;
    },

    /**
     * Moves the last accepted time step forward to `timeStep`, and turns the factor on when `enable`.
     * False when a code of that step (or a later one) was already accepted: the code is spent.
     */
    async acceptTimeStep(userId: string, timeStep: number, options: { enable?: boolean } = {}): Promise<boolean> {
      const updated = await db
        .updateTable('totp_factors')
        .set({ last_time_step: timeStep, ...(options.enable ? { enabled_at: sql<Date>`now()` } : {}) })
        .where('user_id', '=', userId)
        .where((eb) => eb.or([eb('last_time_step', 'is', null), eb('last_time_step', '<', timeStep)]))
        .where('enabled_at', options.enable ? 'is' : 'is not', null)
        .executeTakeFirst();
      return updated.numUpdatedRows > 0n;
    },

    async deleteTotp(userId: string): Promise<boolean> {
      const deleted = await db.deleteFrom('totp_factors').where('user_id', '=', userId).executeTakeFirst();
      return deleted.numDeletedRows > 0n;
    },

    /** Replaces every recovery code of the user with these hashes. */
    async replaceRecoveryCodes(userId: string, hashes: string[]): Promise<void> {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('recovery_codes').where('user_id', '=', userId).execute();
        if (hashes.length > 0) await trx.insertInto('recovery_codes').values(hashes.map((code_hash) => ({ user_id: userId, code_hash }))).execute();
      });
    },

    /** Spends the code with this hash: true once, false if unknown or already used. */
    async spendRecoveryCode(userId: string, hash: string): Promise<boolean> {
      const spent = await db
        .updateTable('recovery_codes')
        .set({ used_at: sql<Date>`now()` })
        .where('user_id', '=', userId)
        .where('code_hash', '=', hash)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      return spent.numUpdatedRows > 0n;
    },

    async unusedRecoveryCodes(userId: string): Promise<number> {
      const row = await db
        .selectFrom('recovery_codes')
        .select((eb) => eb.fn.countAll<string | number>().as('count'))
        .where('user_id', '=', userId)
        .where('used_at', 'is', null)
        .executeTakeFirstOrThrow();
      return Number(row.count);
    },

    async deleteRecoveryCodes(userId: string): Promise<number> {
      const deleted = await db.deleteFrom('recovery_codes').where('user_id', '=', userId).executeTakeFirst();
      return Number(deleted.numDeletedRows);
    },

    async passkeysOf(userId: string): Promise<PasskeyRow[]> {
      return db.selectFrom('passkeys').selectAll().where('user_id', '=', userId).orderBy('created_at').execute();
    },

    async findPasskey(credentialId: string): Promise<PasskeyRow | undefined> {
      return db.selectFrom('passkeys').selectAll().where('credential_id', '=', credentialId).executeTakeFirst();
    },

    async insertPasskey(passkey: { credentialId: string; userId: string; publicKey: string; counter: number; transports: string[]; name: string }): Promise<void> {
      await db
        .insertInto('passkeys')
        .values({
          credential_id: passkey.credentialId,
          user_id: passkey.userId,
          public_key: passkey.publicKey,
          counter: passkey.counter,
          transports: JSON.stringify(passkey.transports),
          name: passkey.name,
        })
        .execute();
    },

    /**
     * Records a use: the new signature counter and the time. `previous` is the counter the check
     * read; a concurrent use of the same assertion moved it, and this one then changes nothing.
     */
    async passkeyUsed(credentialId: string, previous: number, counter: number): Promise<boolean> {
      const updated = await db
        .updateTable('passkeys')
        .set({ counter, last_used_at: sql<Date>`now()` })
        .where('credential_id', '=', credentialId)
        .where('counter', '=', previous)
        .executeTakeFirst();
      return updated.numUpdatedRows > 0n;
    },

    async deletePasskey(userId: string, credentialId: string): Promise<boolean> {
      const deleted = await db.deleteFrom('passkeys').where('user_id', '=', userId).where('credential_id', '=', credentialId).executeTakeFirst();
      return deleted.numDeletedRows > 0n;
    },

    async deletePasskeys(userId: string): Promise<number> {
      const deleted = await db.deleteFrom('passkeys').where('user_id', '=', userId).executeTakeFirst();
      return Number(deleted.numDeletedRows);
    },
  };
}

export type MfaQueries = ReturnType<typeof createMfaQueries>;
