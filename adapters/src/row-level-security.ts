import { sql, type Kysely, type Transaction } from 'kysely';

/**
 * The role the server and the CLI run every query as (migrations/sql/0007_roles.sql): the explicit path
 * for work that is not scoped to one user. It owns no table, so row-level security applies to it.
 */
export const SYSTEM_ROLE = 'jobswipe_system';

/** The role of user-facing queries: row-level security shows it only the rows of `jobswipe.user_id`. */
export const USER_ROLE = 'jobswipe_user';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class InvalidUserIdError extends Error {
  readonly code = 'ERR_INVALID_USER_ID';
}

/**
 * Runs fn in a transaction as the user role with `jobswipe.user_id` set to userId (migrations/sql/
 * 0009_row_level_security.sql), so whatever fn's queries ask for, they see and change that user's rows
 * only. Both settings end with the transaction. fn must use `trx` alone: on the embedded store the
 * transaction holds the only connection.
 */
export async function withUser<DB, T>(db: Kysely<DB>, userId: string, fn: (trx: Transaction<DB>) => Promise<T>): Promise<T> {
  // A user id is a uuid (users.id); anything else is a caller's bug, not a user with no rows.
  if (!UUID.test(userId)) throw new InvalidUserIdError('a user-scoped query needs a user id that is a uuid');
  return db.transaction().execute(async (trx) => {
    await sql`set local role ${sql.id(USER_ROLE)}`.execute(trx);
    await sql`select set_config('jobswipe.user_id', ${userId.toLowerCase()}, true)`.execute(trx);
    return fn(trx);
  });
}
