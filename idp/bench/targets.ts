/**
 * The processes under test: the bare oidc-provider and ours (on Postgres + Redis, on the embedded
 * store, and on Postgres + Redis with WORKERS=2), each a child process on a free port, with
 * everything they were given (database, Redis prefix, data directory) registered for clean-up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { environmentSchema } from '../../config/src/schema.ts';
import { adminQuery as runAdminQuery } from '../../test/support/postgres-admin.ts';
import { freePort, serverNodeFlags, TYPESCRIPT_LOADER } from '../../test/support/processes.ts';
import { discover, type Endpoints } from './flow.ts';
import type { Seed } from './seed.ts';

export const TARGETS = ['bare', 'bare-pg', 'ours-pg', 'ours-embedded', 'ours-pg-workers2'] as const;
export type TargetName = (typeof TARGETS)[number];

export const TARGET_LABELS: Record<TargetName, string> = {
  bare: 'bare oidc-provider',
  'bare-pg': 'bare oidc-provider on Postgres, audited',
  'ours-pg': 'ours (Postgres + Redis)',
  'ours-embedded': 'ours (embedded store)',
  'ours-pg-workers2': 'ours (Postgres + Redis, WORKERS=2)',
};

/** The repository root: children run from here, as `npm start` and `npm run idp` do. */
export const ROOT = new URL('../../', import.meta.url).pathname;
export const POSTGRES_ADMIN_URL = process.env['BENCH_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379';

/** Things to undo at the end, newest first, each at most once, whatever happened before. */
export class Cleanup {
  private readonly steps: Array<{ label: string; run: () => Promise<void> }> = [];

  add(label: string, run: () => Promise<void>): void {
    this.steps.push({ label, run });
  }

  async runAll(): Promise<string[]> {
    const problems: string[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.run();
      } catch (error) {
        problems.push(`${step.label}: ${(error as Error).message}`);
      }
    }
    return problems;
  }
}

export interface RunningTarget {
  name: TargetName;
  base: string;
  endpoints: Endpoints;
  /** The process the harness started (with WORKERS, the primary). */
  pid: number;
  /** RSS in bytes right after start, before any load. */
  idleRss: number[];
}

export interface TargetOptions {
  seed: Seed;
  workDir: string;
  cleanup: Cleanup;
  /** `node --cpu-prof --cpu-prof-dir DIR` for the target's process (bare or ours). */
  /** Node flags that profile the target (--cpu-prof, --heap-prof and their directories). */
  profiling?: string[];
  log: (line: string) => void;
}

/** Why a target cannot run in this build, or undefined when it can. */
export function unsupported(name: TargetName): string | undefined {
  if (name === 'ours-pg-workers2' && !('WORKERS' in environmentSchema.shape)) {
    return 'not run: this build has no WORKERS setting (config/src/schema.ts)';
  }
  return undefined;
}


/** process.env without any of our settings, so only what the harness sets counts. */
function baseEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(environmentSchema.shape)) delete env[name];
  delete env['WORKERS'];
  // Servers started side by side each get a free metrics port.
  env['METRICS_PORT'] = '0';
  return env;
}

let stopping = false;
/** CLI commands under way (servers are stopped by their clean-up step, cleanly). */
const commands = new Set<ChildProcess>();

/** Interrupted: start nothing more, and kill the CLI commands under way. */
export function stopStarting(): void {
  stopping = true;
  for (const command of commands) command.kill('SIGKILL');
}

/** `node [nodeArgs] --import TYPESCRIPT_LOADER entry args`, output to a log file (a pipe nobody reads would fill and block). */
function spawnNode(entry: string, args: string[], env: Record<string, string>, logFile: string, nodeArgs: string[] = []): ChildProcess {
  if (stopping) throw new Error('interrupted');
  const fd = openSync(logFile, 'a');
  try {
    const child = spawn(process.execPath, [...nodeArgs, '--import', TYPESCRIPT_LOADER, entry, ...args], {
      cwd: ROOT,
      env: { ...baseEnvironment(), ...env },
      stdio: ['ignore', fd, fd],
    });
    return child;
  } finally {
    closeSync(fd);
  }
}

const exitOf = (child: ChildProcess) =>
  new Promise<number | string>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode ?? 'unknown');
    else child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });

const tail = (file: string) => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).slice(-15).join('\n');
  } catch {
    return '';
  }
};

/** Runs a CLI command of ours to completion (the same entry point as `npm run idp -- ...`). */
async function runCli(args: string[], env: Record<string, string>, logFile: string): Promise<void> {
  const child = spawnNode('idp/src/cli/main.ts', args, env, logFile);
  commands.add(child);
  child.once('exit', () => commands.delete(child));
  const timeout = setTimeout(() => child.kill('SIGKILL'), 180_000);
  const code = await exitOf(child);
  clearTimeout(timeout);
  if (code !== 0) throw new Error(`idp ${args.join(' ')} exited with ${code}:\n${tail(logFile)}`);
}

/** Stops a child: SIGTERM (a CPU profile is written on a clean exit), then SIGKILL after 15 s. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = exitOf(child);
  child.kill('SIGTERM');
  const outcome = await Promise.race([exited, sleep(15_000, 'timeout' as const)]);
  if (outcome === 'timeout') {
    for (const pid of descendants(child.pid ?? -1)) killQuietly(pid);
    child.kill('SIGKILL');
    await exited;
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Child processes of `pid` (node:cluster workers), from /proc. */
export function descendants(pid: number): number[] {
  const found: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return found;
  }
  for (const task of tasks) {
    try {
      const children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const child of children ? children.split(/\s+/).map(Number) : []) found.push(child, ...descendants(child));
    } catch {
      // the task ended
    }
  }
  return found;
}

/** VmRSS of one process in bytes (0 if it is gone). */
export function rssOf(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** RSS of the target's process and of each of its children (workers), in bytes. */
export function targetRss(target: RunningTarget): number[] {
  return [target.pid, ...descendants(target.pid)].map(rssOf).filter((rss) => rss > 0);
}

async function waitReady(base: string, child: ChildProcess, logFile: string, what: string): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before serving:\n${tail(logFile)}`);
    }
    try {
      const response = await fetch(`${base}/.well-known/openid-configuration`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`${what} did not serve within 180 s:\n${tail(logFile)}`);
}


async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

const adminQuery = (text: string) => runAdminQuery(POSTGRES_ADMIN_URL, text);

/** A fresh database for one target, dropped at the end; its URL. */
async function benchDatabase(cleanup: Cleanup, log: (line: string) => void, name: TargetName): Promise<string> {
  const database = `jobswipe_bench_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${database}`);
  cleanup.add(`drop database ${database}`, () => adminQuery(`drop database if exists ${database} with (force)`));
  log(`${name}: database ${database}`);
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

/** Starts one target, seeded, and registers its undoing. */
export async function startTarget(name: TargetName, options: TargetOptions): Promise<RunningTarget> {
  const { cleanup, seed } = options;
  const dir = await mkdtemp(join(options.workDir, `${name}-`));
  const logFile = join(dir, 'output.log');
  const seedFile = join(dir, 'seed.json');
  await writeFile(seedFile, JSON.stringify(seed), { mode: 0o600 });
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;

  let child: ChildProcess;
  if (name === 'bare' || name === 'bare-pg') {
    const env: Record<string, string> = { BENCH_PORT: String(port), BENCH_SEED: seedFile };
    if (name === 'bare-pg') env['BENCH_DATABASE_URL'] = await benchDatabase(cleanup, options.log, name);
    child = spawnNode('idp/bench/bare-provider.ts', [], env, logFile, options.profiling ?? []);
  } else {
    const dataDir = join(dir, 'data');
    const env: Record<string, string> = {
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: base,
      // Out of the way: one client makes every request of a scenario.
      TOKEN_RATE_LIMIT_PER_MINUTE: '1000000',
      // The load generator is the proxy: each sign-in comes from its own X-Forwarded-For.
      TRUST_PROXY: 'loopback',
    };
    if (name !== 'ours-embedded') {
      const url = await benchDatabase(cleanup, options.log, name);
      const prefix = `jobswipe-bench:${randomBytes(6).toString('hex')}:`;
      cleanup.add(`delete Redis keys ${prefix}*`, () => deleteRedisKeys(prefix));
      Object.assign(env, { DATABASE_URL: url, REDIS_URL, REDIS_KEY_PREFIX: prefix });
      if (name === 'ours-pg-workers2') env['WORKERS'] = '2';
      options.log(`${name}: Redis prefix ${prefix}; migrating`);
      await runCli(['migrate'], env, logFile);
    }
    options.log(`${name}: importing the seed`);
    await runCli(['import', '--file', seedFile], env, logFile);
    // As deployed: the flags of `npm start` and the Docker image's MALLOC_ARENA_MAX.
    const nodeArgs = [...serverNodeFlags(), ...(options.profiling ?? [])];
    child = spawnNode('idp/src/main.ts', [], { ...env, MALLOC_ARENA_MAX: '2' }, logFile, nodeArgs);
  }
  // Registered after the data's clean-up steps: it runs first (the process must stop before its data goes).
  cleanup.add(`remove ${dir}`, () => rm(dir, { recursive: true, force: true }));
  cleanup.add(`stop ${name} (pid ${child.pid})`, () => stopChild(child));
  await waitReady(base, child, logFile, name);
  const endpoints = await discover(base);
  // Give a cluster a moment to fork its workers before the idle RSS is read.
  if (name === 'ours-pg-workers2') await sleep(1_000);
  const target: RunningTarget = { name, base, endpoints, pid: child.pid ?? -1, idleRss: [] };
  target.idleRss = targetRss(target);
  options.log(`${name}: serving at ${base} (pid ${target.pid}, ${target.idleRss.length} process(es))`);
  return target;
}
