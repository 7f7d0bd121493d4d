import { randomBytes } from 'node:crypto';
import { StoreInUseError, createOidcAdapter, createStorageAdapter, openDatabase, type Database } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import { generateSigningKey, type Keystore } from '@jobswipe/keystore';
import { migrateToLatest, pendingMigrations } from '@jobswipe/migrations';
import { createClientRegistry, type ClientRegistry, type Metadata } from '../clients/registry.ts';
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

export interface CliIo {
  out(line: string): void;
  /** Messages for a person (summaries, warnings); standard output stays parseable. */
  err(line: string): void;
  readStdin(): Promise<string>;
}

export interface Store {
  database: Database<Tables>;
  users: ReturnType<typeof createUserQueries>;
  accounts: ReturnType<typeof createAccounts>;
  clients: ClientRegistry;
  /** The signing keystore; opening it needs the configured key-encryption key. */
  keystore(): Promise<Keystore>;
  /** Users' sessions and grants (connects to Redis when configured; logout tokens are awaited). */
  sessions(): Promise<SessionService>;
}

/** What a running server lends the commands it runs for the CLI (embedded store). */
export interface SharedStore {
  database: Database<Tables>;
  sessions: SessionService;
}

export interface StoreOptions {
  /** Apply pending migrations first (the embedded store always does, unless the command migrates itself). */
  migrate?: boolean;
  /** The command manages migrations itself: neither apply nor check them. */
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
      let database: Database<Tables>;
      try {
        database = shared?.database ?? (await openDatabase<Tables>(config.store));
      } catch (error) {
        if (error instanceof StoreInUseError) throw storeInUse(error);
        throw error;
      }
      const closers: Array<() => Promise<void>> = shared ? [] : [() => database.close()];
      const close = async () => {
        for (const closer of closers.splice(0).reverse()) await closer();
      };
      try {
        // The embedded store migrates itself, as `npm start` does; Postgres is migrated explicitly.
        if (options.skipMigrations || shared) {
          // the command handles the schema
        } else if (options.migrate || config.store.kind === 'embedded') {
          await migrateToLatest(database.db);
        } else if ((await pendingMigrations(database.db)).length > 0) {
          throw new CommandError('the database schema is behind: run `npm run idp -- migrate` first');
        }
      } catch (error) {
        await close();
        const described = describeConnectionError(error, config);
        throw described instanceof StartupError ? new CommandError(described.message) : described;
      }
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
            adapter: createStorageAdapter({ db, redis: redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined }),
            registry: createSessionRegistry(db),
            sendLogout: notifier.deliver,
          });
        };
        return await fn({
          database,
          users,
          accounts: createAccounts(users, createPasswordHasher(config.bcryptCost)),
          clients: createClientRegistry(db, validate),
          keystore,
          sessions() {
            sessions ??= openSessions();
            return sessions;
          },
        });
      } finally {
        await close();
      }
    },
  };
}
