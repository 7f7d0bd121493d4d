import { readFileSync } from 'node:fs';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { environmentSchema } from '../../config/src/schema.ts';

/** The repository root: child processes run from here, as `npm start` and `npm run idp` do. */
export const ROOT = new URL('../../', import.meta.url).pathname;
/** What runs the TypeScript sources (`node --import <this> entry.ts`), as package.json's scripts do. */
export const TYPESCRIPT_LOADER = `${ROOT}idp/bin/typescript.mjs`;

/** oidc-provider warns about Node 20 on stderr at import; that line is not ours. */
const RUNTIME_WARNING = /^oidc-provider WARNING: Unsupported runtime/;

/**
 * process.env without any of our settings (the test runner sets NODE_ENV, a developer may have others),
 * but for METRICS_PORT=0: servers started side by side each get a free metrics port, not all 9464.
 */
export function baseEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(environmentSchema.shape)) delete env[name];
  env['METRICS_PORT'] = '0';
  return env;
}

/** Lines of stderr that we wrote (blank lines and the runtime warning removed). */
export function ownLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.trim() !== '' && !RUNTIME_WARNING.test(line));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  // Below Linux's ephemeral range (32768-60999 by default): a port the system handed out would also be
  // handed out as the source port of any outgoing connection (the suites open thousands) before the
  // caller listens on it.
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const port = FREE_PORTS.from + Math.floor(Math.random() * (FREE_PORTS.to - FREE_PORTS.from));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port between ${FREE_PORTS.from} and ${FREE_PORTS.to} after 50 tries`);
}

const FREE_PORTS = { from: 20_000, to: 32_000 };

function canListen(port: number): Promise<boolean> {
  const server = createServer();
  return new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A Node process running one of our entry points, its output collected as it comes. */
export interface Running {
  child: ChildProcessWithoutNullStreams;
  stdout(): string;
  stderr(): string;
  /**
   * The exit code, or the signal name, once the process has exited and its stdout and stderr have
   * ended ('close'). Our processes start no others that could hold the pipes open, so this comes
   * right after 'exit', with all the output in.
   */
  exited: Promise<number | string>;
  signal(signal: NodeJS.Signals): void;
  /** Stops the process if it still runs (see collect), and waits for it. */
  stop(): Promise<void>;
}

/** The Node flags `npm start` runs the server with (package.json: `node <flags> --import ./idp/bin/typescript.mjs idp/src/main.ts`). */
export function serverNodeFlags(): string[] {
  const manifest = JSON.parse(readFileSync(new URL('package.json', `file://${ROOT}`), 'utf8')) as { scripts: Record<string, string> };
  const words = (manifest.scripts['start'] ?? '').split(/\s+/);
  const end = words.indexOf('--import');
  return words[0] === 'node' && end > 0 ? words.slice(1, end) : [];
}

/** Starts `node [nodeArgs] --import TYPESCRIPT_LOADER <entry> ...args` from ROOT, with `stdin` (or nothing) on its standard input. */
export function spawnNode(entry: string, args: string[], env: Record<string, string>, stdin?: string, nodeArgs: string[] = [], options: { ownSession?: boolean } = {}): Running {
  const child = spawn(process.execPath, [...nodeArgs, '--import', TYPESCRIPT_LOADER, entry, ...args], {
    cwd: ROOT,
    env: { ...baseEnvironment(), ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
    // A session of its own, as a service manager starts a service: on Linux its own scheduling group
    // (autogroup), so the thread priorities inside it order only its own threads (docs/scaling.md).
    detached: options.ownSession === true,
  });
  child.stdin.on('error', () => {}); // a process that never reads stdin may exit before we finish writing (EPIPE)
  child.stdin.end(stdin ?? '');
  return collect(child);
}

/**
 * Collects a started child's output as it comes. stop() kills it with SIGKILL, or with `stopWith`
 * first when it should shut down cleanly (then SIGKILL if it is still there after 5 s).
 */
export function collect(child: ChildProcessWithoutNullStreams, stopWith: NodeJS.Signals = 'SIGKILL'): Running {
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | string>((resolve) => {
    child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    stdout: () => stdout,
    stderr: () => stderr,
    exited,
    signal: (signal) => child.kill(signal),
    async stop() {
      if (!running()) return;
      child.kill(stopWith);
      if (stopWith !== 'SIGKILL') {
        await Promise.race([exited, sleep(5_000)]);
        if (running()) child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

/** How a process ended and what it wrote. */
export interface Finished {
  code: number | string;
  stdout: string;
  stderr: string;
  /** stdout split into lines, without the trailing empty one. */
  out: string[];
  /** stderr lines, without blank lines and the runtime warning. */
  err: string[];
}

export interface RunOptions {
  /** What to write to the process's standard input (nothing by default). */
  stdin?: string | undefined;
  /** Called with the process as soon as it is started (e.g. to kill it at the end of a suite). */
  started?: ((running: Running) => void) | undefined;
  /** Node's own options, before the TypeScript loader (e.g. another `--import`). */
  nodeArgs?: string[] | undefined;
}

/** Runs `entry` to completion; kills it and throws if it has not exited within timeoutMs. */
export async function runToExit(
  entry: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
  options: RunOptions = {},
): Promise<Finished> {
  const running = spawnNode(entry, args, env, options.stdin, options.nodeArgs);
  options.started?.(running);
  const timer = new AbortController();
  try {
    const code = await Promise.race([running.exited, sleep(timeoutMs, 'timeout' as const, { signal: timer.signal })]);
    if (code === 'timeout') throw new Error(`${entry} ${args.join(' ')} did not exit within ${timeoutMs} ms; stderr: ${running.stderr()}`);
    const stdout = running.stdout();
    return {
      code,
      stdout,
      stderr: running.stderr(),
      out: stdout.split('\n').filter((line, index, all) => !(line === '' && index === all.length - 1)),
      err: ownLines(running.stderr()),
    };
  } finally {
    timer.abort();
    await running.stop();
  }
}

/** Rows of a table printed by the CLI (`users list`, `keys list`, ...), keyed by the header's column names. */
export function parseTable(lines: string[]): Array<Record<string, string>> {
  const [header, ...rows] = lines;
  if (header === undefined) return [];
  const columns = header.split(/\s{2,}/);
  return rows.map((row) => Object.fromEntries(row.split(/\s{2,}/).map((cell, index) => [columns[index] ?? `#${index}`, cell])));
}
