import { StoreInUseError, SYSTEM_ROLE, createStorageAdapter, openDatabase, type Database, type ValueCipher } from '@jobswipe/adapters';
import { sql } from 'kysely';
import type { Adapter } from 'oidc-provider';
import type { Config } from '@jobswipe/config';
import type { Keystore } from '@jobswipe/keystore';
import { migrateToLatest, pendingMigrations } from '@jobswipe/migrations';
import { lazyCipher } from '../clients/secrets.ts';
import { createClientValidator, createLibraries, createQueries } from '../composition.ts';
import { createLogger } from '../logger.ts';
import { createMailer } from '../mail/transport.ts';
import { loadKek, openKeystore } from '../signing-keys.ts';
import { describeConnectionError, StartupError, type Tables } from '../store.ts';
import { connectRedis } from '../redis.ts';
import { createLogoutNotifier, deliveryOptionsFrom } from '../sessions/delivery.ts';
import { createLogoutTokenSigner, currentKeyOf } from '../sessions/logout-tokens.ts';
import { createAuditLog } from '../audit/log.ts';
import type { CommandIo } from '../command-io.ts';
import type { SharedStore, Store, StoreOptions } from './context.ts';
import { CommandError } from './errors.ts';

function storeInUse(error: StoreInUseError): CommandError {
  return new CommandError(
    `store in use: a JobSwipe Identity server (pid ${error.pid}) holds the embedded store in ${error.dataDir}; ` +
      'stop it first, or point DATABASE_URL at Postgres to administer a running server',
  );
}

/** Opens the store (or takes the running server's `shared` one), runs fn, closes what it opened. */
export async function withOpenStore<T>(config: Config, io: CommandIo, shared: SharedStore | undefined, fn: (store: Store) => Promise<T>, options: StoreOptions): Promise<T> {
  if (shared && options.skipMigrations) {
    // A running server's queries run as SYSTEM_ROLE; a command that manages the schema runs in one
    // transaction as the connecting user, who owns the tables (PGlite is one session: nothing interleaves).
    return shared.database.db.transaction().execute(async (trx) => {
      await sql`set local role none`.execute(trx);
      return withOpenStore(config, io, { ...shared, database: { ...shared.database, db: trx } }, fn, {});
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
    if (shared) return await fn({ database, queries: shared.queries, libraries: shared.libraries, secrets, keystore });
    const queries = createQueries(db);
    let openedKeystore: Promise<Keystore> | undefined;
    let signingKeys: ReturnType<Keystore['signingKeys']> | undefined;
    const notifier = createLogoutNotifier(
      createLogoutTokenSigner(config.issuer, async () => currentKeyOf((await (signingKeys ??= keystore().then((keys) => keys.signingKeys()))).jwks)),
      deliveryOptionsFrom(config),
    );
    const adapter = lazyAdapter(async () => {
      const redis = config.redis ? await connectRedis(config.redis) : undefined;
      if (redis) closers.push(() => redis.quit().then(() => undefined, () => redis.disconnect()));
      const redisOption = redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined;
      return createStorageAdapter({ db, redis: redisOption, secrets: lazyCipher(secrets) });
    });
    const audit = createAuditLog(db, (error, event) =>
      io.err(`idp: warning: audit event ${event.type} was not recorded: ${error instanceof Error ? error.message : String(error)}`),
    );
    // No server may be running to seal what this command wrote: seal it before the store closes.
    closers.push(async () => {
      await audit.settled();
      if (audit.written === 0) return;
      try {
        await audit.seal({ waitMs: 2_000 });
      } catch (error) {
        io.err(`idp: warning: audit events were written but not sealed yet: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    const libraries = createLibraries({
      config,
      db,
      queries,
      adapter,
      secrets: lazyCipher(secrets),
      validateClient: createClientValidator(config, db, queries.users),
      sendLogout: notifier.deliver,
      // Commands print their links and log nothing: the audit log is their record.
      mailer: createMailer({ smtpUrl: config.mail.smtpUrl, from: config.mail.from, dataDir: config.dataDir, logLinks: false }, createLogger('silent')),
      audit,
      keystore: () => (openedKeystore ??= keystore()),
      log: createLogger('silent'),
    });
    return await fn({ database, queries, libraries, secrets, keystore });
  } finally {
    await close();
  }
}

type AdapterConstructor = new (name: string) => Adapter;

/** An adapter that connects its stores on first use: most commands never touch a provider model. */
function lazyAdapter(load: () => Promise<AdapterConstructor>): AdapterConstructor {
  let loaded: Promise<AdapterConstructor> | undefined;
  const constructor = () =>
    (loaded ??= load().catch((error: unknown) => {
      loaded = undefined;
      throw error;
    }));
  return class LazyAdapter implements Adapter {
    #model: Promise<Adapter> | undefined;
    readonly name: string;
    constructor(name: string) {
      this.name = name;
    }
    #adapter(): Promise<Adapter> {
      return (this.#model ??= constructor().then((Loaded) => new Loaded(this.name)));
    }
    async upsert(...args: Parameters<Adapter['upsert']>) {
      return (await this.#adapter()).upsert(...args);
    }
    async find(id: string) {
      return (await this.#adapter()).find(id);
    }
    async findByUserCode(userCode: string) {
      return (await this.#adapter()).findByUserCode(userCode);
    }
    async findByUid(uid: string) {
      return (await this.#adapter()).findByUid(uid);
    }
    async consume(id: string) {
      return (await this.#adapter()).consume(id);
    }
    async destroy(id: string) {
      return (await this.#adapter()).destroy(id);
    }
    async revokeByGrantId(grantId: string) {
      return (await this.#adapter()).revokeByGrantId(grantId);
    }
  };
}
