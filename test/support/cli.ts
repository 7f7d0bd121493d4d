import type { Kysely } from 'kysely';
import { expect } from 'vitest';
import { openDatabase } from '@jobswipe/adapters';
import { runToExit, type Finished } from './processes.ts';
import { storeOptionsOf, type TestStore } from './stores.ts';

const CLI_ENTRY = 'idp/src/cli/main.ts';

/** `idp <args>` as a user runs it, in a process of its own, with the environment `env()` gives then. */
export interface Cli {
  /** Runs to completion, with stdin piped in. */
  run(args: string[], stdin?: string): Promise<Finished>;
  /** A command expected to succeed: status 0, nothing on stderr. */
  ok(args: string[], stdin?: string): Promise<Finished>;
  /** A failure: the given exit status, exactly one line on stderr (no stack trace), nothing on stdout. */
  fails(args: string[], code: number, stdin?: string): Promise<string>;
}

export function cli(env: () => Record<string, string>): Cli {
  const run = (args: string[], stdin?: string) => runToExit(CLI_ENTRY, args, env(), 45_000, { stdin });
  return {
    run,
    async ok(args, stdin) {
      const result = await run(args, stdin);
      expect(result.err, `idp ${args.join(' ')} wrote to stderr`).toEqual([]);
      expect(result.code).toBe(0);
      return result;
    },
    async fails(args, code, stdin) {
      const result = await run(args, stdin);
      expect(result.code, `idp ${args.join(' ')}: ${result.err.join(' / ')}`).toBe(code);
      expect(result.err).toHaveLength(1);
      expect(result.err[0]).not.toMatch(/^\s+at /);
      expect(result.stdout).toBe('');
      return result.err[0] ?? '';
    },
  };
}

/** Reads or changes the store directly, as its owner (after the CLI process has exited and released it). */
export async function asStoreOwner<Tables, T>(store: TestStore, fn: (db: Kysely<Tables>) => Promise<T>): Promise<T> {
  const database = await openDatabase<Tables>(storeOptionsOf(store));
  try {
    return await fn(database.db);
  } finally {
    await database.close();
  }
}
