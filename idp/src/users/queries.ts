import { sql, type Kysely, type Selectable } from 'kysely';
import { NoticedCache, noticedCacheOf, withUser } from '@jobswipe/adapters';
import type { UserTables, UsersTable } from './tables.ts';

export type User = Selectable<UsersTable>;

/** What the provider needs of a user on a token, userinfo or introspection request: the claims and whether the account is usable. */
export type AccountView = Readonly<Pick<User, 'id' | 'email' | 'email_verified' | 'name' | 'disabled_at'>>;

/** The channel on which the database announces a changed user (migration 0022): its id, or `*` for all. */
export const USER_CHANGES_CHANNEL = 'jobswipe_users';

/** About 200 bytes an entry: a bounded few megabytes for the users active on the token endpoint. */
const MAX_KEPT_ACCOUNTS = 20_000;

/**
 * The accounts of a database handle kept between requests while the server receives the notices of
 * migration 0022 (server.ts listens; elsewhere, as in the CLI, nothing is kept). Only the view the
 * provider needs: sign-in, recovery and the account pages always read the row.
 */
export function accountCacheOf(db: object): NoticedCache<AccountView> {
  return noticedCacheOf(db, 'accounts', () => new NoticedCache<AccountView>(MAX_KEPT_ACCOUNTS));
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a write failed on the unique index of lower(email): the address belongs to another user. */
export function isAddressTaken(error: unknown): boolean {
  return (error as { code?: string }).code === '23505';
}

export interface NewUser {
  email: string;
  name: string;
  passwordHash: string | null;
  emailVerified: boolean;
}

export function createUserQueries(db: Kysely<UserTables>) {
  const accounts = accountCacheOf(db);
  // This process's own writes are forgotten at once, not only when their notice comes back.
  const written = (id: string) => accounts.changed(id);
  return {
    async findById(id: string): Promise<User | undefined> {
      if (!UUID.test(id)) return undefined;
      return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    },

    /** The provider's view of a user (kept between requests while change notices arrive; see accountCacheOf). */
    async findAccount(id: string): Promise<AccountView | undefined> {
      if (!UUID.test(id)) return undefined;
      const kept = accounts.get(id);
      if (kept) return kept;
      const generation = accounts.generation();
      const found = await db
        .selectFrom('users')
        .select(['id', 'email', 'email_verified', 'name', 'disabled_at'])
        .where('id', '=', id)
        .executeTakeFirst();
      if (!found) return undefined;
      const account = Object.freeze(found);
      accounts.keep(id, account, generation);
      return account;
    },

    /** The signed-in user's own row, read as that user (row-level security): the account pages' path. */
    async findOwn(id: string): Promise<User | undefined> {
      if (!UUID.test(id)) return undefined;
      return withUser(db, id, (trx) => trx.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst());
    },

    async findByEmail(email: string): Promise<User | undefined> {
      // Postgres text cannot hold NUL; no stored address contains one.
      if (email.includes('\u0000')) return undefined;
      return db
        .selectFrom('users')
        .selectAll()
        .where(sql`lower(email)`, '=', email.toLowerCase())
        .executeTakeFirst();
    },

    /**
     * One page of users by id, those whose address starts with `emailPrefix` (any case) when given:
     * up to `limit` after the id `after` (the lower(email) text_pattern_ops index serves the prefix).
     */
    async page(options: { emailPrefix?: string | undefined; after?: string | undefined; limit: number }): Promise<User[]> {
      let query = db.selectFrom('users').selectAll().orderBy('id').limit(options.limit);
      if (options.emailPrefix !== undefined) {
        const escaped = options.emailPrefix.toLowerCase().replace(/[\\%_]/g, (character) => `\\${character}`);
        query = query.where(sql<string>`lower(email)`, 'like', `${escaped}%`);
      }
      if (options.after !== undefined) query = query.where('id', '>', options.after);
      return query.execute();
    },

    async list(): Promise<User[]> {
      return db.selectFrom('users').selectAll().orderBy('created_at').orderBy('email').execute();
    },

    async insert(user: NewUser): Promise<User> {
      return db
        .insertInto('users')
        .values({
          email: user.email,
          name: user.name,
          password_hash: user.passwordHash,
          email_verified: user.emailVerified,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    },

    async update(id: string, changes: Partial<Pick<NewUser, 'email' | 'name' | 'passwordHash' | 'emailVerified'>>): Promise<void> {
      await db
        .updateTable('users')
        .set({
          ...(changes.email === undefined ? {} : { email: changes.email }),
          ...(changes.name === undefined ? {} : { name: changes.name }),
          ...(changes.passwordHash === undefined ? {} : { password_hash: changes.passwordHash }),
          ...(changes.emailVerified === undefined ? {} : { email_verified: changes.emailVerified }),
          updated_at: sql<Date>`now()`,
        })
        .where('id', '=', id)
        .execute();
      written(id);
    },

    async disable(id: string): Promise<void> {
      await db
        .updateTable('users')
        .set({ disabled_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
        .where('id', '=', id)
        .where('disabled_at', 'is', null)
        .execute();
      written(id);
    },
  };
}

export type UserQueries = ReturnType<typeof createUserQueries>;
