import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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
  /** The server's log lines about statements that took a second or more, for a suite's report. */
  slowStatements(): Promise<string[]>;
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
  // Unix sockets in the cluster's own directory; fsync off (a fast stop still checkpoints everything);
  // statements that take a second or more are logged, for the suites' reports.
  const options = `-p ${port} -c listen_addresses=127.0.0.1 -k ${root} -c fsync=off -c max_connections=100 -c log_min_duration_statement=1000`;
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
    async slowStatements() {
      const log = await readFile(join(root, 'server.log'), 'utf8').catch(() => '');
      return log.split('\n').filter((line) => / duration: \d/.test(line));
    },
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
  /** Redis's latency monitor (events of 100 ms or more: event, when, latest ms, worst ms), for a suite's report. */
  latency(): Promise<string[]>;
}

/** A client of the Redis server (or Sentinel) on `port` that never retries; the caller connects and disconnects it. */
function probeClient(port: number, password?: string): Redis {
  const client = new Redis({ port, password, lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => {});
  return client;
}

/** Starts `redis-server args` and waits until it answers PING on `port` (with `password`, if it has one). */
async function spawnRedis(args: string[], port: number, password?: string): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const client = probeClient(port, password);
  for (let attempt = 0; attempt < 100; attempt += 1) {
    try {
      await client.connect();
      await client.ping();
      client.disconnect();
      return child;
    } catch {
      client.disconnect();
      await sleep(100);
    }
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${port}`);
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

/** A redis-server with an append-only file, so a restart keeps its data. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'jobswipe-private-redis-'));
  let child: ChildProcess | undefined;
  const start = async () => {
    child = await spawnRedis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'yes', '--appendfsync', 'everysec', '--latency-monitor-threshold', '100', '--dir', dir], port);
  };
  const stop = () => stopProcess(child);
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
    async latency() {
      const client = probeClient(port);
      try {
        await client.connect();
        const events = (await client.call('latency', 'latest')) as Array<[string, number, number, number]>;
        return events.map(([event, at, latest, worst]) => `${event} at ${new Date(at * 1000).toISOString()}: latest ${latest} ms, worst ${worst} ms`);
      } finally {
        client.disconnect();
      }
    },
  };
}

export interface PrivateSentinelSet {
  /** The Sentinel's port: what REDIS_SENTINELS names. */
  sentinelPort: number;
  /** The ports of the two Redis servers, the primary at the start first. */
  ports: [number, number];
  /** The port of the primary the Sentinel names now. */
  primaryPort(): Promise<number>;
  /** `SENTINEL FAILOVER`: the replica becomes the primary; resolves once the Sentinel names it. */
  failover(): Promise<number>;
  /** A client of the Redis server on `port`, authenticated; the caller disconnects it. */
  client(port: number): Redis;
  destroy(): Promise<void>;
}

/**
 * A primary, its replica and one Sentinel monitoring them as `master`, all password-protected, as a
 * small Redis deployment with failover is: the Sentinel rewrites its own configuration file.
 */
export async function startPrivateSentinelSet(master: string, password: string, sentinelPassword: string): Promise<PrivateSentinelSet> {
  const dir = await mkdtemp(join(tmpdir(), 'jobswipe-private-sentinel-'));
  const [primary, replica, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const server = (port: number, ...extra: string[]) =>
    spawnRedis(['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--requirepass', password, '--masterauth', password, ...extra], port, password);
  const children: ChildProcess[] = [];
  const sentinelClient = () => probeClient(sentinelPort, sentinelPassword);
  const primaryPort = async () => {
    const client = sentinelClient();
    try {
      const [, port] = (await client.call('sentinel', 'get-master-addr-by-name', master)) as [string, string];
      return Number(port);
    } finally {
      client.disconnect();
    }
  };
  const destroy = async () => {
    await Promise.all(children.map((child) => stopProcess(child)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    children.push(await server(primary), await server(replica, '--replicaof', '127.0.0.1', String(primary)));
    const configFile = join(dir, 'sentinel.conf');
    await writeFile(
      configFile,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `requirepass ${sentinelPassword}`,
        `sentinel monitor ${master} 127.0.0.1 ${primary} 1`,
        `sentinel auth-pass ${master} ${password}`,
        `sentinel down-after-milliseconds ${master} 5000`,
        `sentinel failover-timeout ${master} 10000`,
        '',
      ].join('\n'),
    );
    children.push(await spawnRedis([configFile, '--sentinel'], sentinelPort, sentinelPassword));
    // A failover needs a replica the Sentinel knows: it learns of it from the primary's INFO (every 10 s).
    const client = sentinelClient();
    try {
      for (let attempt = 0; ; attempt += 1) {
        const replicas = (await client.call('sentinel', 'replicas', master)) as string[][];
        const known = replicas.some((fields) => fields.includes(String(replica)) && fields[fields.indexOf('master-link-status') + 1] === 'ok');
        if (known) break;
        if (attempt > 300) throw new Error('the Sentinel never saw the replica');
        await sleep(100);
      }
    } finally {
      client.disconnect();
    }
  } catch (error) {
    await destroy();
    throw error;
  }
  return {
    sentinelPort,
    ports: [primary, replica],
    primaryPort,
    async failover() {
      const before = await primaryPort();
      const client = sentinelClient();
      try {
        await client.call('sentinel', 'failover', master);
      } finally {
        client.disconnect();
      }
      for (let attempt = 0; attempt < 300; attempt += 1) {
        const now = await primaryPort();
        if (now !== before) return now;
        await sleep(100);
      }
      throw new Error('the Sentinel did not switch to the replica within 30 s');
    },
    client: (port) => probeClient(port, password),
    destroy,
  };
}
