import { spawn } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { baseEnvironment, collect, freePort, ownLines, ROOT, runToExit, TYPESCRIPT_LOADER, type Running } from '../../../test/support/processes.ts';
import { createTestStore, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';

const SERVER_ENTRY = 'idp/src/main.ts';
const CLI_ENTRY = 'idp/src/cli/main.ts';

/** `node --import TYPESCRIPT_LOADER <entry>` started from a shell that set `umask 000`: nothing is masked by default. */
function spawnUnderUmask000(entry: string, args: string[], env: Record<string, string>): Running {
  const child = spawn('sh', ['-c', 'umask 000 && exec "$@"', 'sh', process.execPath, '--import', TYPESCRIPT_LOADER, entry, ...args], {
    cwd: ROOT,
    env: { ...baseEnvironment(), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end();
  return collect(child, 'SIGTERM');
}

/** Polls /healthz until it answers 200; fails with the server's stderr if it exits first. */
async function untilHealthy(port: number, server: Running, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.child.exitCode !== null) throw new Error(`server exited with ${server.child.exitCode}; stderr: ${server.stderr()}`);
    const answered = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) }).then(
      (response) => response.status,
      () => undefined,
    );
    if (answered === 200) return;
    await sleep(200);
  }
  throw new Error(`the server did not become healthy within ${timeoutMs} ms; stderr: ${server.stderr()}`);
}

const modeOf = async (path: string) => ((await lstat(path)).mode & 0o777).toString(8);

/** Every entry under root whose mode is not 0700 (directories) or 0600 (files, sockets), with its mode. */
async function looseEntries(root: string): Promise<string[]> {
  const loose: string[] = [];
  for (const name of await readdir(root, { recursive: true })) {
    const path = join(root, name);
    const entry = await lstat(path);
    const wanted = entry.isDirectory() ? 0o700 : 0o600;
    if ((entry.mode & 0o777) !== wanted) loose.push(`${name} ${(entry.mode & 0o777).toString(8)}`);
  }
  return loose;
}

describe('DATA_DIR: created when missing, for its owner alone whatever the umask', () => {
  let parent: string;
  const stores: TestStore[] = [];
  const servers: Running[] = [];

  const postgresStore = async () => {
    const store = await createTestStore('postgres');
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    parent = await mkdtemp(join(tmpdir(), 'jobswipe-data-dir-'));
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });
  afterAll(async () => {
    for (const store of stores) await store.drop();
    await rm(parent, { recursive: true, force: true });
  });

  it('Postgres without DATA_DIR and without a KEK: the server creates DATA_DIR 0700 and its generated keys 0600 (umask 000)', async () => {
    const store = await postgresStore();
    const dataDir = join(parent, 'server', 'data');
    const port = await freePort();
    const server = spawnUnderUmask000(SERVER_ENTRY, [], { ...storeEnvironment(store), DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    servers.push(server);
    await untilHealthy(port, server);
    expect(await modeOf(dataDir)).toBe('700');
    expect(await modeOf(join(dataDir, 'keystore.kek'))).toBe('600');
    expect(await modeOf(join(dataDir, 'secrets.json'))).toBe('600');
    expect(await looseEntries(dataDir)).toEqual([]);
    // A DATA_DIR it created is not open to others: no warning.
    expect(server.stdout()).not.toContain('chmod 700');
    expect(ownLines(server.stderr())).toEqual([]);
  }, 120_000);

  it('Postgres without DATA_DIR: a CLI command creates it too (umask 000)', async () => {
    const store = await postgresStore();
    const dataDir = join(parent, 'cli', 'data');
    const env = { ...storeEnvironment(store), DATA_DIR: dataDir };
    expect((await runToExit(CLI_ENTRY, ['migrate'], env, 60_000)).code).toBe(0);
    await rm(join(parent, 'cli'), { recursive: true, force: true });

    const cli = spawnUnderUmask000(CLI_ENTRY, ['keys', 'list'], env);
    expect(await cli.exited, cli.stderr()).toBe(0);
    expect(ownLines(cli.stderr())).toEqual([]);
    expect(cli.stdout()).toBe('no signing keys\n');
    expect(await modeOf(dataDir)).toBe('700');
    expect(await modeOf(join(dataDir, 'keystore.kek'))).toBe('600');
  }, 120_000);

  it('a DATA_DIR that cannot be created: the server and the CLI exit 2 with one line naming it, on either store', async () => {
    const blocker = join(parent, 'a-regular-file');
    await writeFile(blocker, 'not a directory\n');
    const dataDir = join(blocker, 'data');
    const store = await postgresStore();
    for (const env of [{ ...storeEnvironment(store), DATA_DIR: dataDir }, { DATA_DIR: dataDir }]) {
      for (const [entry, args] of [
        [SERVER_ENTRY, []],
        [CLI_ENTRY, ['keys', 'list']],
      ] as const) {
        const result = await runToExit(entry, [...args], { ...env, PORT: String(await freePort()) }, 30_000);
        expect(result.code, `${entry}: ${result.stderr}`).toBe(2);
        expect(result.err).toHaveLength(1);
        expect(result.err[0]).toContain(dataDir);
        expect(result.stderr).not.toMatch(/^ {4}at /m);
        expect(result.stdout).toBe('');
      }
    }
  }, 120_000);

  it('the embedded store under umask 000: every directory in DATA_DIR is 0700 and every file (the cluster, the lock, the socket) 0600', async () => {
    const dataDir = join(parent, 'embedded', 'data');
    const port = await freePort();
    const server = spawnUnderUmask000(SERVER_ENTRY, [], { DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    servers.push(server);
    await untilHealthy(port, server);
    const names = await readdir(dataDir);
    expect(names).toEqual(expect.arrayContaining(['pgdata', 'store.lock', 'keystore.kek', 'secrets.json']));
    expect((await readdir(join(dataDir, 'pgdata'))).length).toBeGreaterThan(5);
    expect(await modeOf(dataDir)).toBe('700');
    expect(await looseEntries(dataDir)).toEqual([]);
  }, 180_000);

  it('a DATA_DIR open to group or others gets one start-up warning naming it and the fix', async () => {
    const store = await postgresStore();
    const dataDir = join(parent, 'open');
    await mkdir(dataDir);
    await chmod(dataDir, 0o755);
    const port = await freePort();
    const server = spawnUnderUmask000(SERVER_ENTRY, [], { ...storeEnvironment(store), DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    servers.push(server);
    await untilHealthy(port, server);
    const warnings = server
      .stdout()
      .split('\n')
      .filter((line) => line.includes('chmod 700'));
    expect(warnings).toHaveLength(1);
    const warning = JSON.parse(warnings[0]!) as { level: number; msg: string; path: string };
    expect(warning.level).toBe(40);
    expect(warning.path).toBe(dataDir);
    expect(warning.msg).toBe(`DATA_DIR ${dataDir} is open to other users; run \`chmod 700 ${dataDir}\``);
    // The warning changes nothing: the operator decides.
    expect(((await stat(dataDir)).mode & 0o777).toString(8)).toBe('755');
  }, 120_000);
});
