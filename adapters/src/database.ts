import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';

export type StoreOptions =
  | { kind: 'postgres'; url: string; poolMax: number }
  | { kind: 'embedded'; dataDir: string };

export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly kind: StoreOptions['kind'];
  /** true when a trivial query answers within the timeout. */
  ping(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

// timestamptz and jsonb come back as Date and objects from both drivers; int8 stays a string in pg.
async function ping(db: Kysely<unknown>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(false), timeoutMs);
  });
  try {
    return await Promise.race([sql`select 1`.execute(db).then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Opens the configured store: a pooled Postgres connection, or the embedded PGlite cluster. */
export async function openDatabase<DB>(
  options: StoreOptions,
  onPoolError: (error: Error) => void = () => {},
): Promise<Database<DB>> {
  if (options.kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax,
      idleTimeoutMillis: 30_000,
      connectionTimeoutMillis: 5_000,
    });
    // An idle client losing its server must not crash the process; the next query reconnects.
    pool.on('error', onPoolError);
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      kind: 'postgres',
      ping: (timeoutMs = 2_000) => ping(db as Kysely<unknown>, timeoutMs),
      close: () => db.destroy(),
    };
  }
  // Loaded on demand: PGlite's WebAssembly build costs ~1.5 s and ~170 MB that a Postgres deployment never needs.
  const [{ openEmbeddedStore }, { PGliteDialect }] = await Promise.all([import('./embedded.ts'), import('./pglite-dialect.ts')]);
  const store = await openEmbeddedStore(options.dataDir);
  const db = new Kysely<DB>({ dialect: new PGliteDialect(store.pglite) });
  return {
    db,
    kind: 'embedded',
    ping: (timeoutMs = 2_000) => ping(db as Kysely<unknown>, timeoutMs),
    async close() {
      await db.destroy();
      await store.close();
    },
  };
}
