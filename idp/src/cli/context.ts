import type { Database, ValueCipher } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import type { Keystore } from '@jobswipe/keystore';
import type { Libraries, Queries } from '../composition.ts';
import type { Tables } from '../store.ts';
import { CommandError, UsageError } from './errors.ts';
import { emailSchema } from '../users/schemas.ts';
import type { User } from '../users/queries.ts';
import type { CommandIo } from '../command-io.ts';

export interface Store {
  database: Database<Tables>;
  queries: Queries;
  /**
   * The business rules, as the server has them (a running server lends its own). Sessions connect to
   * Redis, and logout tokens and client secrets open the keystore, only when a command first needs them.
   */
  libraries: Libraries;
  /**
   * Seals and opens client secrets (the keystore's column data key, under the configured KEK). Open
   * it before a transaction: on the embedded store, opening it inside one would wait for itself.
   */
  secrets(): Promise<ValueCipher>;
  /** The signing keystore; opening it needs the configured key-encryption key. */
  keystore(): Promise<Keystore>;
}

/** What a running server lends the commands it runs for the CLI (embedded store): its own graph. */
export interface SharedStore {
  database: Database<Tables>;
  queries: Queries;
  /** Built with logout tokens awaited, so that commands can report their delivery. */
  libraries: Libraries;
}

export interface StoreOptions {
  /** Apply pending migrations first (the embedded store always does, unless the command migrates itself). */
  migrate?: boolean;
  /** The command manages migrations itself: neither apply nor check them; it runs as the owner, not SYSTEM_ROLE. */
  skipMigrations?: boolean;
}

export interface CliContext {
  config: Config;
  io: CommandIo;
  /** Opens the store, runs fn, closes the store. `migrate` applies pending migrations first. */
  withStore<T>(fn: (store: Store) => Promise<T>, options?: StoreOptions): Promise<T>;
}

/** One command: its synopsis (and description) for `idp help`, and what it does. */
export interface Command {
  usage: string;
  run(context: CliContext, args: string[]): Promise<void>;
}

/** Runs fn on the store with the user the email names; a missing user is the command's error. */
export function withUser<T>(context: CliContext, email: string, fn: (store: Store, user: User) => Promise<T>): Promise<T> {
  if (!emailSchema.safeParse(email).success) throw new UsageError(`--email: ${email} is not a valid email address`);
  return context.withStore(async (store) => {
    const user = await store.queries.users.findByEmail(email);
    if (!user) throw new CommandError(`no user with email ${email}`);
    return fn(store, user);
  });
}

/**
 * The CLI's view of the store. Given `shared`, commands run on that open database (a running server's,
 * which has migrated it) and leave it open; otherwise each command opens and closes the store itself.
 * What opens it (the database driver, the business rules, the keystore) is loaded when a command first
 * needs the store: `idp help`, a usage error or a command forwarded to a server never loads it.
 */
export function createCliContext(config: Config, io: CommandIo, shared?: SharedStore): CliContext {
  return {
    config,
    io,
    async withStore(fn, options = {}) {
      const { withOpenStore } = await import('./open-store.ts');
      return withOpenStore(config, io, shared, fn, options);
    },
  };
}
