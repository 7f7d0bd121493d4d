import { randomBytes } from 'node:crypto';
import { StoreInUseError, SYSTEM_ROLE, createOidcAdapter, createStorageAdapter, openDatabase, type Database, type ValueCipher } from '@jobswipe/adapters';
import { sql } from 'kysely';
import type { Config } from '@jobswipe/config';
import { generateSigningKey, type Keystore } from '@jobswipe/keystore';
import { migrateToLatest, pendingMigrations } from '@jobswipe/migrations';
import { createClientRegistry, type ClientRegistry, type Metadata } from '../clients/registry.ts';
import { lazyCipher } from '../clients/secrets.ts';
import { createProvider } from '../provider/configuration.ts';
import { acceptedScopes } from '../provider/scopes.ts';
import { loadKek, openKeystore } from '../signing-keys.ts';
import { describeConnectionError, StartupError, type Tables } from '../store.ts';
import { createAccounts } from '../users/accounts.ts';
import { createPasswordHasher } from '../users/passwords.ts';
import { createUserQueries } from '../users/queries.ts';
import { connectRedis } from '../redis.ts';
import { createLogoutNotifier, deliveryOptionsFrom } from '../sessions/delivery.ts';
import { createLogoutTokenSigner, currentKeyOf } from '../sessions/logout-tokens.ts';
import { createSessionRegistry } from '../sessions/registry.ts';
import { createSessionService, type SessionService } from '../sessions/service.ts';
import { CommandError } from './errors.ts';
import { createAuditLog, type AuditLog } from '../audit/log.ts';

export interface CliIo {
  out(line: string): void;
  /** Messages for a person (summaries, warnings); standard output stays parseable. */
  err(line: string): void;
  readStdin(): Promise<string>;
  /** Aborted when the caller goes away (the admin socket closed): long-running commands stop. */
  signal?: AbortSignal | undefined;
}

export interface Store {
  database: Database<Tables>;
  users: ReturnType<typeof createUserQueries>;
  accounts: ReturnType<typeof createAccounts>;
  clients: ClientRegistry;
  /**
   * Seals and opens client secrets (the keystore's column data key, under the configured KEK). Open
   * it before a transaction: on the embedded store, opening it inside one would wait for itself.
   */
  secrets(): Promise<ValueCipher>;
  /** The signing keystore; opening it needs the configured key-encryption key. */
  keystore(): Promise<Keystore>;
  /** Users' sessions and grants (connects to Redis when configured; logout tokens are awaited). */
  sessions(): Promise<SessionService>;
  /** The audit log; a failed write is a warning on standard error, not a failed command. */
  audit: AuditLog;
}

/** What a running server lends the commands it runs for the CLI (embedded store). */
export interface SharedStore {
  database: Database<Tables>;
  sessions: SessionService;
}

export interface StoreOptions {
  /** Apply pending migrations first (the embedded store always does, unless the command migrates itself). */
  migrate?: boolean;
  /** The command manages migrations itself: neither apply nor check them; it runs as the owner, not SYSTEM_ROLE. */
  skipMigrations?: boolean;
}

export interface CliContext {
  config: Config;
  io: CliIo;
  /** Opens the store, runs fn, closes the store. `migrate` applies pending migrations first. */
  withStore<T>(fn: (store: Store) => Promise<T>, options?: StoreOptions): Promise<T>;
}

function storeInUse(error: StoreInUseError): CommandError {
  return new CommandError(
    `store in use: a JobSwipe Identity server (pid ${error.pid}) holds the embedded store in ${error.dataDir}; ` +
      'stop it first, or point DATABASE_URL at Postgres to administer a running server',
  );
}

/**
 * The CLI's view of the store. Given `shared`, commands run on that open database (a running server's,
 * which has migrated it) and leave it open; otherwise each command opens and closes the store itself.
 */
export function createCliContext(config: Config, io: CliIo, shared?: SharedStore): CliContext {
  return {
    config,
    io,
    async withStore(fn, options = {}) {
      if (shared && options.skipMigrations) {
        // A running server's queries run as SYSTEM_ROLE; a command that manages the schema runs in one
        // transaction as the connecting user, who owns the tables (PGlite is one session: nothing interleaves).
        return shared.database.db.transaction().execute(async (trx) => {
          await sql`set local role none`.execute(trx);
          return createCliContext(config, io, { ...shared, database: { ...shared.database, db: trx } }).withStore(fn);
        });
      }
      let database: Database<Tables>;
      try {
        // Migrations run as the connecting user (the owner), every other query as SYSTEM_ROLE; a command
        // that manages the schema itself keeps the owner's connection.
        database =
          shared?.database ??
          (await openDatabase<Tables>(
            config.store,
            options.skipMigrations
              ? {}
              : {
                  role: SYSTEM_ROLE,
                  async prepare(db) {
                    // The embedded store migrates itself, as `npm start` does; Postgres is migrated explicitly.
                    if (options.migrate || config.store.kind === 'embedded') {
                      await migrateToLatest(db);
                    } else if ((await pendingMigrations(db)).length > 0) {
                      throw new CommandError('the database schema is behind: run `npm run idp -- migrate` first');
                    }
                  },
                },
          ));
      } catch (error) {
        if (error instanceof StoreInUseError) throw storeInUse(error);
        const described = describeConnectionError(error, config);
        throw described instanceof StartupError ? new CommandError(described.message) : described;
      }
      const closers: Array<() => Promise<void>> = shared ? [] : [() => database.close()];
      const close = async () => {
        for (const closer of closers.splice(0).reverse()) await closer();
      };
      try {
        const { db } = database;
        const users = createUserQueries(db);
        // Client metadata is validated by a provider configured like the server's. Validation signs
        // nothing, so that provider gets a throwaway key rather than the keystore's.
        let throwaway: ReturnType<typeof generateSigningKey> | undefined;
        const validate = async (metadata: Metadata) => {
          // One RSA key per command, however many clients an import validates.
          throwaway ??= generateSigningKey();
          const provider = createProvider({
            issuer: config.issuer,
            jwks: { keys: [(await throwaway).privateJwk] },
            cookieKeys: [randomBytes(32).toString('base64url')],
            adapter: createOidcAdapter(db),
            scopes: await acceptedScopes(db, config.api.scopes, [metadata]),
            users,
            api: config.api,
          });
          await provider.Client.validate(metadata);
        };
        const keystore = async () => {
          const { kek } = await loadKek(config);
          return openKeystore(db, config, kek);
        };
        let columnCipher: Promise<ValueCipher> | undefined;
        const secrets = () =>
          (columnCipher ??= keystore().then((keys) => keys.columnCipher()).catch((error: unknown) => {
            columnCipher = undefined;
            throw error;
          }));
        let sessions: Promise<SessionService> | undefined;
        const openSessions = async (): Promise<SessionService> => {
          if (shared) return shared.sessions;
          const redis = config.redis ? await connectRedis(config.redis) : undefined;
          if (redis) closers.push(() => redis.quit().then(() => undefined, () => redis.disconnect()));
          const keys = await (await keystore()).signingKeys();
          const notifier = createLogoutNotifier(
            createLogoutTokenSigner(config.issuer, async () => currentKeyOf(keys.jwks)),
            deliveryOptionsFrom(config),
          );
          return createSessionService({
            db,
            adapter: createStorageAdapter({
              db,
              redis: redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined,
              secrets: lazyCipher(secrets),
            }),
            registry: createSessionRegistry(db),
            sendLogout: notifier.deliver,
          });
        };
        return await fn({
          database,
          users,
          accounts: createAccounts(users, createPasswordHasher(config.bcryptCost)),
          clients: createClientRegistry(db, validate, lazyCipher(secrets)),
          secrets,
          keystore,
          sessions() {
            sessions ??= openSessions();
            return sessions;
          },
          audit: createAuditLog(db, (error, event) =>
            io.err(`idp: warning: audit event ${event.type} was not recorded: ${error instanceof Error ? error.message : String(error)}`),
          ),
        });
      } finally {
        await close();
      }
    },
  };
}
