import { readdir, readFile } from 'node:fs/promises';
import { sql, type Kysely } from 'kysely';
import { Migrator, type Migration, type MigrationProvider, type MigrationResultSet } from 'kysely/migration';

const directory = new URL('../sql/', import.meta.url);

/** Plain SQL files in migrations/sql, applied in file-name order; each runs in its own transaction. */
class SqlFileMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(directory)).filter((name) => name.endsWith('.sql')).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      const text = await readFile(new URL(file, directory), 'utf8');
      migrations[file.replace(/\.sql$/, '')] = {
        // A migration file is trusted code shipped with the product, never user input.
        up: async (db) => {
          await sql.raw(text).execute(db);
        },
      };
    }
    return migrations;
  }
}

export class MigrationError extends Error {
  readonly code = 'ERR_MIGRATION_FAILED';
}

function migrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: new SqlFileMigrationProvider() });
}

/** Applies every pending migration; returns the names applied. */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  return applied(await migrator(db).migrateToLatest());
}

/** Applies the pending migrations up to and including `name` (a data migration is tested from the schema before it). */
export async function migrateTo(db: Kysely<any>, name: string): Promise<string[]> {
  return applied(await migrator(db).migrateTo(name));
}

function applied(result: MigrationResultSet): string[] {
  if (result.error) {
    const failed = result.results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    const cause = result.error instanceof Error ? result.error.message : String(result.error);
    throw new MigrationError(`migration ${failed} failed: ${cause}`);
  }
  return (result.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Names of migrations not yet applied to this database. */
export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const all = await migrator(db).getMigrations();
  return all.filter((m) => m.executedAt === undefined).map((m) => m.name);
}
