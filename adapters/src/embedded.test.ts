import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestStore, type TestStore } from '../../test/support/stores.ts';
import { openDatabase } from './database.ts';
import { openEmbeddedStore } from './embedded.ts';
import { StoreInUseError } from './store-in-use.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const EMBEDDED_MODULE = new URL('./embedded.ts', import.meta.url).href;

/**
 * Opens the store in a separate process, writes a row, says "ready", and closes on "close" (then "closed").
 * SIGKILL leaves its lock behind, as a crash would.
 */
const HOLDER_SCRIPT = `
const { openEmbeddedStore } = await import(process.env.EMBEDDED_MODULE);
try {
  const store = await openEmbeddedStore(process.env.STORE_DIR);
  await store.pglite.exec("create table if not exists holder_marks (pid int); insert into holder_marks values (" + process.pid + ")");
  process.stdout.write('ready\\n');
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', async (chunk) => {
    if (!chunk.includes('close')) return;
    await store.close();
    process.stdout.write('closed\\n');
    process.exit(0);
  });
} catch (error) {
  process.stdout.write('failed ' + (error && error.message) + '\\n');
  process.exit(1);
}
`;

const lockPath = (dataDir: string) => join(dataDir, 'store.lock');

const children: ChildProcess[] = [];
const stores: TestStore[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
  for (const store of stores.splice(0)) await store.drop();
});

async function newStore(): Promise<TestStore> {
  const store = await createTestStore('embedded');
  stores.push(store);
  return store;
}

/** Resolves with the first line the child prints containing `word`; rejects on exit or timeout. */
function waitForLine(child: ChildProcess, word: string, ms = 30_000): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    let errors = '';
    const timer = setTimeout(() => finish(new Error(`no "${word}" from pid ${child.pid} within ${ms} ms: ${output}${errors}`)), ms);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const line = output.split('\n').find((candidate) => candidate.includes(word));
      if (line !== undefined) finish(undefined, line);
    };
    const onError = (chunk: Buffer) => {
      errors += chunk.toString();
    };
    const onExit = (code: number | null) => finish(new Error(`pid ${child.pid} exited (${code}) before "${word}": ${output}${errors}`));
    function finish(error: Error | undefined, line?: string) {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stderr?.off('data', onError);
      child.off('exit', onExit);
      if (error) reject(error);
      else resolve(line ?? '');
    }
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onError);
    child.on('exit', onExit);
  });
}

/** Another process holding the store in dataDir, once it has said "ready". */
async function holdInAnotherProcess(dataDir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HOLDER_SCRIPT], {
    cwd: ROOT,
    env: { ...process.env, EMBEDDED_MODULE, STORE_DIR: dataDir },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  await waitForLine(child, 'ready');
  return child;
}

/** A pid that belonged to a process which has since exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  const pid = child.pid;
  await once(child, 'exit');
  if (pid === undefined) throw new Error('no pid');
  expect(() => process.kill(pid, 0)).toThrow(expect.objectContaining({ code: 'ESRCH' }));
  return pid;
}

describe('embedded store lock', () => {
  it('refuses a second open while another process holds the store, and opens once it closes', async () => {
    const store = await newStore();
    const holder = await holdInAnotherProcess(store.dataDir);
    expect((await readFile(lockPath(store.dataDir), 'utf8')).trim()).toBe(String(holder.pid));

    const error: unknown = await openDatabase({ kind: 'embedded', dataDir: store.dataDir }).then(
      async (database) => {
        await database.close();
        return undefined;
      },
      (rejection: unknown) => rejection,
    );
    expect(error).toBeInstanceOf(StoreInUseError);
    expect((error as StoreInUseError).message).toContain('store in use');
    expect((error as StoreInUseError).message).toContain(store.dataDir);
    expect((error as StoreInUseError).code).toBe('ERR_STORE_IN_USE');
    expect((error as StoreInUseError).pid).toBe(holder.pid);
    // The failed open left the holder's lock alone.
    expect((await readFile(lockPath(store.dataDir), 'utf8')).trim()).toBe(String(holder.pid));

    holder.stdin?.write('close\n');
    await waitForLine(holder, 'closed');
    const [code] = (await once(holder, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(existsSync(lockPath(store.dataDir))).toBe(false);

    const database = await openDatabase({ kind: 'embedded', dataDir: store.dataDir });
    try {
      const marks = await sql<{ pid: number }>`select pid from holder_marks`.execute(database.db);
      expect(marks.rows).toStrictEqual([{ pid: holder.pid }]);
      expect((await readFile(lockPath(store.dataDir), 'utf8')).trim()).toBe(String(process.pid));
    } finally {
      await database.close();
    }
    expect(existsSync(lockPath(store.dataDir))).toBe(false);
  });

  it('refuses the open while the lock names any live process, and opens once that process is gone', async () => {
    const store = await newStore();
    const sleeper = spawn('sleep', ['30']);
    children.push(sleeper);
    await once(sleeper, 'spawn');
    await writeFile(lockPath(store.dataDir), String(sleeper.pid));

    await expect(openEmbeddedStore(store.dataDir)).rejects.toSatisfy(
      (error: unknown) =>
        error instanceof StoreInUseError && error.message.includes('store in use') && error.pid === sleeper.pid,
    );
    expect(await readFile(lockPath(store.dataDir), 'utf8')).toBe(String(sleeper.pid));

    sleeper.kill('SIGKILL');
    await once(sleeper, 'exit');

    const embedded = await openEmbeddedStore(store.dataDir);
    try {
      expect(await readFile(lockPath(store.dataDir), 'utf8')).toBe(String(process.pid));
    } finally {
      await embedded.close();
    }
  });

  it('clears a lock left by a dead process and opens', async () => {
    const store = await newStore();
    const pid = await deadPid();
    await writeFile(lockPath(store.dataDir), String(pid));

    const database = await openDatabase({ kind: 'embedded', dataDir: store.dataDir });
    try {
      expect(await database.ping()).toBe(true);
      expect(await readFile(lockPath(store.dataDir), 'utf8')).toBe(String(process.pid));
    } finally {
      await database.close();
    }
    expect(existsSync(lockPath(store.dataDir))).toBe(false);
  });

  it('clears an empty lock file (a holder that died before writing its pid) and opens', async () => {
    const store = await newStore();
    await writeFile(lockPath(store.dataDir), '');

    const embedded = await openEmbeddedStore(store.dataDir);
    try {
      expect(await readFile(lockPath(store.dataDir), 'utf8')).toBe(String(process.pid));
    } finally {
      await embedded.close();
    }
  });

  it('opens after the holding process was killed, with what it had committed', async () => {
    const store = await newStore();
    const holder = await holdInAnotherProcess(store.dataDir);
    holder.kill('SIGKILL');
    await once(holder, 'exit');
    // Killed without a chance to clean up: its lock is still there.
    expect((await readFile(lockPath(store.dataDir), 'utf8')).trim()).toBe(String(holder.pid));

    const database = await openDatabase({ kind: 'embedded', dataDir: store.dataDir });
    try {
      const marks = await sql<{ pid: number }>`select pid from holder_marks`.execute(database.db);
      expect(marks.rows).toStrictEqual([{ pid: holder.pid }]);
    } finally {
      await database.close();
    }
  });

  it('close releases the lock, so the next open succeeds and sees the data', async () => {
    const store = await newStore();
    const first = await openDatabase({ kind: 'embedded', dataDir: store.dataDir });
    try {
      expect(await readFile(lockPath(store.dataDir), 'utf8')).toBe(String(process.pid));
      await sql`create table notes (body text)`.execute(first.db);
      await sql`insert into notes values (${'written by the first open'})`.execute(first.db);
    } finally {
      await first.close();
    }
    expect(existsSync(lockPath(store.dataDir))).toBe(false);

    const second = await openDatabase({ kind: 'embedded', dataDir: store.dataDir });
    try {
      const notes = await sql<{ body: string }>`select body from notes`.execute(second.db);
      expect(notes.rows).toStrictEqual([{ body: 'written by the first open' }]);
    } finally {
      await second.close();
    }
    expect(existsSync(lockPath(store.dataDir))).toBe(false);
  });
});
