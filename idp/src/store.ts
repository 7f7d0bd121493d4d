import { openDatabase, SYSTEM_ROLE, type Database, type OidcTables } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import type { KeystoreTables } from '@jobswipe/keystore';
import { migrateToLatest, pendingMigrations } from '@jobswipe/migrations';
import type { AuditTables } from './audit/tables.ts';
import type { SessionTables } from './sessions/tables.ts';
import type { RateLimitTables } from './security/database-counters.ts';
import type { UserTables } from './users/tables.ts';
import type { AccountTokenTables } from './users/account-tokens.ts';
import type { PlanTables } from './plans/tables.ts';
import type { UpstreamTables } from './upstreams/tables.ts';
import type { MfaTables } from './mfa/tables.ts';

export type Tables = OidcTables & KeystoreTables & UserTables & SessionTables & RateLimitTables & AuditTables & AccountTokenTables & PlanTables & UpstreamTables & MfaTables;

/** A start-up problem the operator can fix; printed as one line, without a stack trace. */
export class StartupError extends Error {
  readonly code = 'ERR_STARTUP';
}

/**
 * Opens the configured store and brings its schema up to date (or refuses if that is not allowed).
 * Migrations run as the connecting user, who owns the tables; every later query runs as SYSTEM_ROLE.
 */
export async function openStore(config: Config, onPoolError?: (error: Error) => void, onQuery?: (seconds: number) => void): Promise<Database<Tables>> {
  try {
    return await openDatabase<Tables>(config.store, {
      role: SYSTEM_ROLE,
      onPoolError,
      onQuery,
      async prepare(db) {
        if (config.migrateOnStart) {
          await migrateToLatest(db);
          return;
        }
        const pending = await pendingMigrations(db);
        if (pending.length > 0) {
          throw new StartupError(
            `the database schema is behind (${pending.length} pending migration(s)): run \`npm run idp -- migrate\` first`,
          );
        }
      },
    });
  } catch (error) {
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
