import { Kysely, PostgresDialect, sql, type KyselyConfig, type LogEvent } from 'kysely';
import pg from 'pg';

export type StoreOptions =
  | { kind: 'postgres'; url: string; poolMax: number }
  | { kind: 'embedded'; dataDir: string };

export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly kind: StoreOptions['kind'];
  /** true when a trivial query answers within the timeout. */
  ping(timeoutMs?: number): Promise<boolean>;
  /**
   * Receives the notifications (NOTIFY) sent on a channel by any connection, this process's or
   * another's. `state(false)` when notifications may have been missed (the listening connection was
   * lost: it reconnects by itself), `state(true)` once they are received again. Returns the unlisten.
   */
  listen(channel: string, handlers: ChannelHandlers): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface ChannelHandlers {
  message(payload: string): void;
  state(listening: boolean): void;
}

const CHANNEL_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const RELISTEN_MS = 1_000;

/**
 * LISTEN on a connection of its own (a pooled one would be handed to other queries). A lost
 * connection is reported, then replaced every second until a new one listens.
 */
async function listenOnPostgres(url: string, role: string | undefined, channel: string, handlers: ChannelHandlers, onError: (error: Error) => void) {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000, ...(role === undefined ? {} : { options: `-c role=${role}` }) });
    const lost = (error?: Error) => {
      if (error) onError(error);
      if (client !== next) return;
      client = undefined;
      next.removeAllListeners('notification');
      next.end().catch(() => {});
      handlers.state(false);
      if (!stopped) retry = setTimeout(() => void connect().catch(() => {}), RELISTEN_MS).unref();
    };
    next.on('error', lost);
    next.on('end', () => lost());
    next.on('notification', (notification) => {
      if (notification.channel === channel) handlers.message(notification.payload ?? '');
    });
    client = next;
    try {
      await next.connect();
      await next.query(`LISTEN ${channel}`);
    } catch (error) {
      lost(error as Error);
      throw error;
    }
    if (stopped) {
      await next.end().catch(() => {});
      return;
    }
    handlers.state(true);
  };
  await connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    const last = client;
    client = undefined;
    await last?.end().catch(() => {});
  };
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

export interface OpenOptions<DB> {
  /**
   * The role every query runs as once `prepare` has run (SYSTEM_ROLE for the server and the CLI). Unset:
   * the connecting user, who owns the tables (migrations, and tests that inspect tables).
   */
  role?: string;
  /**
   * Runs as the connecting user before the role is taken: applying or checking migrations. On Postgres
   * it gets a short-lived connection of its own, closed before the pool opens.
   */
  prepare?: (db: Kysely<DB>) => Promise<void>;
  onPoolError?: ((error: Error) => void) | undefined;
  /** Told the duration of every query (failed ones too), in seconds: the server's store timing metric. */
  onQuery?: ((seconds: number) => void) | undefined;
}

/** Kysely's query log, reduced to the duration. */
function queryLog(onQuery: ((seconds: number) => void) | undefined): Pick<KyselyConfig, 'log'> {
  return onQuery ? { log: (event: LogEvent) => onQuery(event.queryDurationMillis / 1000) } : {};
}

/** How long a query waits for a pooled connection (the pool is full, or the server is away). */
const CONNECTION_TIMEOUT_MS = 3_000;
/** How long a query waits for its answer before the connection is given up; far above any of ours. */
const QUERY_TIMEOUT_MS = 15_000;

/**
 * A connection that loses its server (a restart, a failover) emits 'error'. pg-pool listens only while
 * the connection is idle in the pool: one checked out between two statements of a transaction has
 * no listener, and an unhandled 'error' event ends the process. Every connection gets a listener for
 * its whole life; the statement under way fails, the pool drops the connection when it is released,
 * and the next query opens a fresh one.
 */
function keepClientErrorsHandled(pool: pg.Pool, onError: (error: Error) => void): void {
  pool.on('error', onError);
  pool.on('connect', (client) => {
    client.on('error', onError);
  });
}

// The role goes into the startup options (Postgres) and SET ROLE (embedded): a plain name, nothing else.
const ROLE_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Checks that the pool's connections really run as the role (an `options` in the URL would override ours). */
async function assertRole(db: Kysely<unknown>, role: string): Promise<void> {
  const { rows } = await sql<{ current_user: string }>`select current_user`.execute(db);
  const actual = rows[0]?.current_user;
  if (actual !== role) throw new Error(`the database connection runs as ${actual ?? 'nobody'}, not ${role}`);
}

/**
 * Opens the configured store: a pooled Postgres connection, or the embedded PGlite cluster. With a
 * `role`, `prepare` runs first as the connecting user, then every query runs as the role.
 */
export async function openDatabase<DB>(options: StoreOptions, open: OpenOptions<DB> = {}): Promise<Database<DB>> {
  const { role, prepare, onPoolError = () => {}, onQuery } = open;
  if (role !== undefined && !ROLE_NAME.test(role)) throw new Error(`invalid role name ${JSON.stringify(role)}`);
  if (options.kind === 'postgres') {
    if (prepare) {
      const ownerPool = new pg.Pool({ connectionString: options.url, max: 1, connectionTimeoutMillis: 5_000 });
      keepClientErrorsHandled(ownerPool, onPoolError);
      const owner = new Kysely<DB>({ dialect: new PostgresDialect({ pool: ownerPool }) });
      try {
        await prepare(owner);
      } finally {
        await owner.destroy();
      }
    }
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolMax,
      idleTimeoutMillis: 30_000,
      // A request waiting for a connection gives up within this (and answers 503), rather than hang.
      connectionTimeoutMillis: CONNECTION_TIMEOUT_MS,
      // A query that gets no answer at all (a server that stopped responding) fails instead of hanging.
      query_timeout: QUERY_TIMEOUT_MS,
      // Every connection of the pool, including those opened after a reconnect, starts as the role.
      ...(role === undefined ? {} : { options: `-c role=${role}` }),
    });
    keepClientErrorsHandled(pool, onPoolError);
    const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }), ...queryLog(onQuery) });
    if (role !== undefined) {
      try {
        await assertRole(db as Kysely<unknown>, role);
      } catch (error) {
        await db.destroy();
        throw error;
      }
    }
    const stopListening: Array<() => Promise<void>> = [];
    return {
      db,
      kind: 'postgres',
      ping: (timeoutMs = 2_000) => ping(db as Kysely<unknown>, timeoutMs),
      async listen(channel, handlers) {
        if (!CHANNEL_NAME.test(channel)) throw new Error(`invalid channel name ${JSON.stringify(channel)}`);
        const stop = await listenOnPostgres(options.url, role, channel, handlers, onPoolError);
        stopListening.push(stop);
        return stop;
      },
      async close() {
        await Promise.all(stopListening.splice(0).map((stop) => stop()));
        await db.destroy();
      },
    };
  }
  // Loaded on demand: PGlite's WebAssembly build costs ~1.5 s and ~170 MB that a Postgres deployment never needs.
  const [{ openEmbeddedStore }, { PGliteDialect }] = await Promise.all([import('./embedded.ts'), import('./pglite-dialect.ts')]);
  const store = await openEmbeddedStore(options.dataDir);
  const db = new Kysely<DB>({ dialect: new PGliteDialect(store.pglite), ...queryLog(onQuery) });
  try {
    await prepare?.(db);
    // PGlite is one session: the role holds for every later query (a transaction's SET LOCAL ROLE ends with it).
    if (role !== undefined) {
      await sql`set role ${sql.id(role)}`.execute(db);
      await assertRole(db as Kysely<unknown>, role);
    }
  } catch (error) {
    await db.destroy();
    await store.close();
    throw error;
  }
  return {
    db,
    kind: 'embedded',
    ping: (timeoutMs = 2_000) => ping(db as Kysely<unknown>, timeoutMs),
    async listen(channel, handlers) {
      if (!CHANNEL_NAME.test(channel)) throw new Error(`invalid channel name ${JSON.stringify(channel)}`);
      // One session, in this process: nothing can be missed while it is open.
      const unlisten = await store.pglite.listen(channel, (payload) => handlers.message(payload));
      handlers.state(true);
      return async () => {
        await unlisten().catch(() => {});
      };
    },
    async close() {
      await db.destroy();
      await store.close();
    },
  };
}
