import { createHash, randomBytes } from 'node:crypto';
import { sql, type ColumnType, type Kysely } from 'kysely';

export type AccountTokenPurpose = 'verify_email' | 'invitation' | 'reset_password' | 'change_email' | 'set_password';

export interface AccountTokensTable {
  token_hash: string;
  purpose: AccountTokenPurpose;
  user_id: string | null;
  email: string | null;
  created_at: ColumnType<Date, never, never>;
  expires_at: Date;
  used_at: Date | null;
}

export interface AccountTokenTables {
  account_tokens: AccountTokensTable;
}

/** How long a mailed link works. */
export const TOKEN_LIFETIMES: Record<AccountTokenPurpose, number> = {
  verify_email: 24 * 60 * 60,
  invitation: 7 * 24 * 60 * 60,
  reset_password: 60 * 60,
  change_email: 24 * 60 * 60,
  set_password: 7 * 24 * 60 * 60,
};

export type TokenRejection = 'unknown' | 'used' | 'expired';

/** Only the hash is stored: whoever reads the table cannot use the links. */
const hashOf = (token: string) => createHash('sha256').update(token).digest('hex');

/** 32 random bytes in base64url: what a link carries. */
const TOKEN_FORMAT = /^[A-Za-z0-9_-]{43}$/;

/** Single-use tokens for links mailed to users (migrations 0011, 0012 and 0021). */
export function createAccountTokens(db: Kysely<AccountTokenTables>) {
  return {
    /**
     * A token for a user (verify_email, reset_password, set_password), for a user and the new address they asked for
     * (change_email), or for an address without an account (invitation).
     */
    async issue(purpose: AccountTokenPurpose, owner: { userId: string; email?: string } | { email: string }): Promise<string> {
      const token = randomBytes(32).toString('base64url');
      await db
        .insertInto('account_tokens')
        .values({
          token_hash: hashOf(token),
          purpose,
          user_id: 'userId' in owner ? owner.userId : null,
          email: owner.email ?? null,
          expires_at: new Date(Date.now() + TOKEN_LIFETIMES[purpose] * 1000),
        })
        .execute();
      return token;
    },

    /** The address an unused, unexpired invitation is for. */
    async invitationFor(token: string): Promise<string | undefined> {
      if (!TOKEN_FORMAT.test(token)) return undefined;
      const row = await db
        .selectFrom('account_tokens')
        .select('email')
        .where('token_hash', '=', hashOf(token))
        .where('purpose', '=', 'invitation')
        .where('used_at', 'is', null)
        .where('expires_at', '>', sql<Date>`now()`)
        .executeTakeFirst();
      return row?.email ?? undefined;
    },

    /** Whether a token would be accepted now, without spending it (for the confirmation page). */
    async check(token: string, purpose: AccountTokenPurpose): Promise<TokenRejection | undefined> {
      if (!TOKEN_FORMAT.test(token)) return 'unknown';
      const row = await db.selectFrom('account_tokens').selectAll().where('token_hash', '=', hashOf(token)).where('purpose', '=', purpose).executeTakeFirst();
      if (!row) return 'unknown';
      if (row.used_at) return 'used';
      if (row.expires_at.getTime() <= Date.now()) return 'expired';
      return undefined;
    },

    /** The user a token names, used or not (for the audit row of a refused link). */
    async userOf(token: string): Promise<string | undefined> {
      if (!TOKEN_FORMAT.test(token)) return undefined;
      const row = await db.selectFrom('account_tokens').select('user_id').where('token_hash', '=', hashOf(token)).executeTakeFirst();
      return row?.user_id ?? undefined;
    },

    /** Spends a token: one UPDATE, so two concurrent redemptions cannot both succeed. */
    async redeem(token: string, purpose: AccountTokenPurpose): Promise<{ userId: string | null; email: string | null } | { rejected: TokenRejection }> {
      if (!TOKEN_FORMAT.test(token)) return { rejected: 'unknown' };
      const spent = await db
        .updateTable('account_tokens')
        .set({ used_at: sql<Date>`now()` })
        .where('token_hash', '=', hashOf(token))
        .where('purpose', '=', purpose)
        .where('used_at', 'is', null)
        .where('expires_at', '>', sql<Date>`now()`)
        .returning(['user_id', 'email'])
        .executeTakeFirst();
      if (spent) return { userId: spent.user_id, email: spent.email };
      return { rejected: (await this.check(token, purpose)) ?? 'unknown' };
    },

    /**
     * Spends every unused token of these kinds the user has (a reset ends the other reset links; a new
     * address ends the links mailed to the old one). Returns how many were still open.
     */
    async revokeFor(userId: string, purposes: AccountTokenPurpose[]): Promise<number> {
      const result = await db
        .updateTable('account_tokens')
        .set({ used_at: sql<Date>`now()` })
        .where('user_id', '=', userId)
        .where('purpose', 'in', purposes)
        .where('used_at', 'is', null)
        .executeTakeFirst();
      return Number(result.numUpdatedRows);
    },

    /** Removes tokens that can no longer be used a day after they stopped working. */
    async sweep(): Promise<number> {
      const result = await db.deleteFrom('account_tokens').where('expires_at', '<', sql<Date>`now() - interval '1 day'`).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}

export type AccountTokens = ReturnType<typeof createAccountTokens>;
