import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { freePort } from './processes.ts';

const run = promisify(execFile);

/**
 * Servers of a test's own (Postgres, Redis), on their own ports and in temporary directories, that
 * the test may stop and restart: the shared servers on 5432 and 6379 are never touched.
 */

/**
 * The bin directory holding initdb and pg_ctl: TEST_POSTGRES_BIN, or the newest Postgres server
 * installed the Debian way (/usr/lib/postgresql/N/bin); undefined when there is none.
 */
export function postgresBinDir(): string | undefined {
  const given = process.env['TEST_POSTGRES_BIN'];
  if (given) return existsSync(join(given, 'initdb')) ? given : undefined;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  // Synchronous on purpose: a suite decides whether it can run while it is being collected.
  const versions = readdirSync(root)
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const bin = join(root, version, 'bin');
    if (existsSync(join(bin, 'initdb')) && existsSync(join(bin, 'pg_ctl'))) return bin;
  }
  return undefined;
}

export interface PrivatePostgres {
  port: number;
  /** postgres://postgres@127.0.0.1:port/postgres: the superuser, for creating and inspecting. */
  adminUrl: string;
  /** The URL of a database on this server. */
  urlOf(database: string): string;
  createDatabase(name: string): Promise<string>;
  /** pg_ctl stop -m fast: connections are cut, new ones refused. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server (immediately) and removes its directory. */
  destroy(): Promise<void>;
}

/**
 * initdb and postgres refuse to run as root: when the tests run as root, the cluster belongs to the
 * `postgres` account and its commands run through runuser.
 */
function asClusterOwner(command: string, args: string[]): [string, string[]] {
  if (userInfo().uid !== 0) return [command, args];
  return ['runuser', ['-u', 'postgres', '--', command, ...args]];
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  if (!bin) throw new Error('the resilience tests need the Postgres server binaries (initdb, pg_ctl): Debian: apt-get install -y postgresql; elsewhere set TEST_POSTGRES_BIN to their directory');
  const root = await mkdtemp(join(tmpdir(), 'jobswipe-private-pg-'));
  if (userInfo().uid === 0) await chown(root, Number((await run('id', ['-u', 'postgres'])).stdout.trim()), Number((await run('id', ['-g', 'postgres'])).stdout.trim()));
  const data = join(root, 'data');
  const port = await freePort();
  const pgctl = async (...args: string[]) => {
    const [command, argv] = asClusterOwner(join(bin, 'pg_ctl'), ['-D', data, ...args]);
    await run(command, argv, { timeout: 60_000 });
  };
  {
    const [command, argv] = asClusterOwner(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale', 'C']);
    await run(command, argv, { timeout: 120_000 });
  }
  // Unix sockets in the cluster's own directory; fsync off (a fast stop still checkpoints everything).
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${root} -c fsync=off -c max_connections=100`;
  const start = () => pgctl('-w', '-t', '30', '-l', join(root, 'server.log'), '-o', options, 'start');
  await start();
  const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const urlOf = (database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  let destroyed = false;
  return {
    port,
    adminUrl,
    urlOf,
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        await client.query(`create database ${name}`);
      } finally {
        await client.end();
      }
      return urlOf(name);
    },
    stop: () => pgctl('-w', '-t', '30', '-m', 'fast', 'stop'),
    start,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await pgctl('-w', '-t', '30', '-m', 'immediate', 'stop').catch(() => {});
      await rm(root, { recursive: true, force: true });
    },
  };
}

export interface PrivateRedis {
  port: number;
  url: string;
  /** SIGTERM, waits for the exit (the append-only file is complete). */
  stop(): Promise<void>;
  start(): Promise<void>;
  destroy(): Promise<void>;
}

/** A redis-server with an append-only file, so a restart keeps its data. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'jobswipe-private-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--dir', dir], {
      stdio: 'ignore',
    });
    const client = new Redis({ port, lazyConnect: true, retryStrategy: () => null });
    client.on('error', () => {});
    for (let attempt = 0; attempt < 100; attempt += 1) {
      try {
        await client.connect();
        await client.ping();
        client.disconnect();
        return;
      } catch {
        client.disconnect();
        await sleep(100);
      }
    }
    child.kill('SIGKILL');
    throw new Error(`redis-server did not start on port ${port}`);
  };
  const stop = async () => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
    async destroy() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
