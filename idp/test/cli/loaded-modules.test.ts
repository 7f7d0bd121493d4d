import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToExit } from '../../../test/support/processes.ts';

/**
 * What an `idp` command loads before it runs: `idp help`, a usage error and a command handed to a
 * running server need no database driver, provider or password dictionary, and start in a fraction
 * of the time a store command takes. The packages each run imported are recorded by a module hook.
 */

/** Preloaded before the TypeScript loader: appends every resolved file URL to IMPORTS_LOG. */
const RECORDER = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  if (resolved.url.startsWith('file:')) appendFileSync(process.env.IMPORTS_LOG, resolved.url + '\\\\n');
  return resolved;
}\`));
`)}`;

const HEAVY = ['oidc-provider', 'kysely', 'pg', '@electric-sql/pglite', 'bcrypt', '@zxcvbn-ts/language-common', '@simplewebauthn/server', 'ioredis'];

describe('modules an idp command loads', () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'idp-loaded-modules-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The packages (under node_modules) that `idp <args>` imported, and its exit status. */
  async function packagesLoadedBy(args: string[], name: string, env: Record<string, string> = {}): Promise<{ packages: Set<string>; code: number | string }> {
    const log = join(dir, `${name}.log`);
    const { code } = await runToExit('idp/src/cli/main.ts', args, { DATA_DIR: join(dir, 'data'), IMPORTS_LOG: log, ...env }, 45_000, { nodeArgs: ['--import', RECORDER] });
    const urls = (await readFile(log, 'utf8')).split('\n').filter(Boolean);
    const packages = new Set(urls.map((url) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1]).filter((name): name is string => name !== undefined));
    return { packages, code };
  }

  it('`idp help` and a usage error load the configuration only: no store, provider or password rules', async () => {
    for (const [args, status] of [[['help'], 0], [['users', 'create', '--email', 'not-an-address'], 2]] as const) {
      const { packages, code } = await packagesLoadedBy([...args], args.join('-'));
      expect(code).toBe(status);
      // The recorder saw the configuration's own dependency...
      expect(packages).toContain('zod');
      // ...and none of the store's, the provider's or the password rules'.
      expect(HEAVY.filter((name) => packages.has(name)), `idp ${args.join(' ')}`).toEqual([]);
    }
  });

  it('a store command loads them when it opens the store (the recorder sees what it should)', async () => {
    // Nothing listens on port 1: the command loads what opens the store, then fails to reach it.
    const { packages, code } = await packagesLoadedBy(['users', 'list'], 'users-list', { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none' });
    expect(code).toBe(1);
    expect(packages).toContain('kysely');
    expect(packages).toContain('oidc-provider');
  });
});
