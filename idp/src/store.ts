import { openDatabase, type Database, type OidcTables } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import type { KeystoreTables } from '@jobswipe/keystore';
import { migrateToLatest, pendingMigrations } from '@jobswipe/migrations';
import type { SessionTables } from './sessions/tables.ts';
import type { RateLimitTables } from './security/rate-limit-store.ts';
import type { UserTables } from './users/tables.ts';

export type Tables = OidcTables & KeystoreTables & UserTables & SessionTables & RateLimitTables;

/** A start-up problem the operator can fix; printed as one line, without a stack trace. */
export class StartupError extends Error {
  readonly code = 'ERR_STARTUP';
}

/** Opens the configured store and brings its schema up to date (or refuses if that is not allowed). */
export async function openStore(config: Config, onPoolError?: (error: Error) => void): Promise<Database<Tables>> {
  const database = await openDatabase<Tables>(config.store, onPoolError);
  try {
    if (config.migrateOnStart) {
      await migrateToLatest(database.db);
    } else {
      const pending = await pendingMigrations(database.db);
      if (pending.length > 0) {
        throw new StartupError(
          `the database schema is behind (${pending.length} pending migration(s)): run \`npm run idp -- migrate\` first`,
        );
      }
    }
    return database;
  } catch (error) {
    await database.close();
    throw describeConnectionError(error, config);
  }
}

/** Turns driver errors about an unreachable database into a message naming the server. */
export function describeConnectionError(error: unknown, config: Config): unknown {
  const code = (error as { code?: string }).code;
  if (config.store.kind === 'postgres' && ['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'EAI_AGAIN', '28P01', '3D000', '28000'].includes(code ?? '')) {
    const url = new URL(config.store.url);
    return new StartupError(`cannot use the database at ${url.hostname}:${url.port || 5432}${url.pathname}: ${(error as Error).message}`);
  }
  return error;
}
