import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { baseEnvironment, collect, ROOT, type Running } from '../../../test/support/processes.ts';

/** The web app's folder, and the Next CLI that builds and serves it. */
export const WEB_DIR = join(ROOT, 'clients/web');
const NEXT_CLI = join(ROOT, 'node_modules/next/dist/bin/next');
const BUILD_DIR = join(WEB_DIR, '.next');
const HASH_FILE = join(BUILD_DIR, 'jobswipe-source-hash');

/** Every setting the web app reads: a child process gets only the ones a test gives it. */
const WEB_SETTINGS = ['IDP_ISSUER', 'WEB_CLIENT_ID', 'WEB_CLIENT_SECRET', 'NEXTAUTH_URL', 'NEXTAUTH_SECRET', 'PORT', 'WEB_REFRESH_SKEW_SECONDS', 'WEB_UPSTREAMS'];

function webEnvironment(env: Record<string, string>): Record<string, string | undefined> {
  // vitest sets NODE_ENV=test; next build and next start set their own.
  const { NODE_ENV: _testMode, ...base } = baseEnvironment();
  for (const name of WEB_SETTINGS) delete base[name];
  return { ...base, NEXT_TELEMETRY_DISABLED: '1', ...env };
}

async function sourceFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (['node_modules', '.next', 'test'].includes(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...(await sourceFiles(path)));
    else if (entry.name !== 'next-env.d.ts') files.push(path);
  }
  return files.sort();
}

/** A hash of everything the build depends on: the app's sources and the Next and next-auth versions. */
async function sourceHash(): Promise<string> {
  const hash = createHash('sha256');
  for (const file of await sourceFiles(WEB_DIR)) hash.update(file).update(await readFile(file));
  for (const pkg of ['next', 'next-auth', 'react']) hash.update(await readFile(join(ROOT, 'node_modules', pkg, 'package.json')));
  return hash.digest('hex');
}

/**
 * `next build`, once for as long as the sources stay the same: CI runs the suite twice (two Node
 * versions), and a build takes most of a minute on two cores. Returns how long it took (0: reused).
 */
export async function buildWebApp(): Promise<number> {
  const hash = await sourceHash();
  if (existsSync(join(BUILD_DIR, 'BUILD_ID')) && existsSync(HASH_FILE) && (await readFile(HASH_FILE, 'utf8')) === hash) return 0;
  const started = Date.now();
  await rm(BUILD_DIR, { recursive: true, force: true });
  const child = spawn(process.execPath, [NEXT_CLI, 'build'], { cwd: WEB_DIR, env: webEnvironment({}) as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`next build failed (${code}):\n${output}`);
  await mkdir(BUILD_DIR, { recursive: true });
  await writeFile(HASH_FILE, hash);
  return Date.now() - started;
}

/** `next start` with the given settings, as `npm run start -w clients/web` runs it. */
export function spawnWebApp(env: Record<string, string>): Running {
  const child = spawn(process.execPath, [NEXT_CLI, 'start', '-H', '127.0.0.1'], { cwd: WEB_DIR, env: webEnvironment(env) as NodeJS.ProcessEnv, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.end();
  return collect(child, 'SIGTERM');
}

/** Waits until the app answers on `base` (or fails with its output if it exits first). */
export async function waitUntilServing(app: Running, base: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void app.exited.then(() => (exited = true));
  while (Date.now() < deadline) {
    if (exited) throw new Error(`the web app exited:\n${app.stdout()}\n${app.stderr()}`);
    try {
      const response = await fetch(`${base}/`, { redirect: 'manual' });
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`the web app did not answer within ${timeoutMs} ms:\n${app.stdout()}\n${app.stderr()}`);
}
