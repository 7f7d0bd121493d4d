import { execFile } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { PGlite } from '@electric-sql/pglite';
import { StoreInUseError } from './store-in-use.ts';

const run = promisify(execFile);

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the data directory's lock file, clearing one left by a process that no longer exists. */
function acquireLock(dataDir: string): () => void {
  const path = join(dataDir, 'store.lock');
  for (let attempt = 0; attempt < 3; attempt += 1) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off('exit', release);
        try {
          unlinkSync(path);
        } catch {
          // already gone
        }
      };
      process.on('exit', release);
      return release;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
      // A live holder, this process included (a second open here would corrupt the cluster), keeps it.
      if (Number.isInteger(holder) && isAlive(holder)) {
        throw new StoreInUseError(dataDir, holder);
      }
      unlinkSync(path);
    }
  }
  throw new Error(`could not lock ${path}`);
}

/** 0700 directories and 0600 files: PGlite chmods files it writes (0666, 0644) past any umask. */
async function restrictToOwner(directory: string): Promise<void> {
  await chmod(directory, 0o700);
  for (const entry of await readdir(directory, { withFileTypes: true })) {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) await restrictToOwner(path);
    else if (entry.isFile()) await chmod(path, 0o600);
  }
}

/**
 * Postgres' memory settings for one process's small database: its defaults (128 MB of shared
 * buffers among them) are sized for a server, and in PGlite every byte of them is this process's
 * own memory. A development database fits in a few megabytes of cache.
 */
const EMBEDDED_SETTINGS = ['-c', 'shared_buffers=8MB', '-c', 'work_mem=2MB', '-c', 'maintenance_work_mem=16MB', '-c', 'temp_buffers=2MB'];

export interface EmbeddedStore {
  pglite: PGlite;
  close(): Promise<void>;
}

/** Opens (creating on first use) the PGlite cluster under dataDir, for this process alone. */
export async function openEmbeddedStore(dataDir: string): Promise<EmbeddedStore> {
  const directory = resolve(dataDir);
  // mkdir's mode is narrowed by the umask; chmod makes a new directory exactly 0700.
  if (await mkdir(directory, { recursive: true, mode: 0o700 })) await chmod(directory, 0o700);
  const release = acquireLock(directory);
  try {
    const pgdata = join(directory, 'pgdata');
    if (!existsSync(join(pgdata, 'PG_VERSION'))) {
      const script = new URL('./initdb-child.mjs', import.meta.url).pathname;
      await run(process.execPath, [script, pgdata], { timeout: 120_000 });
    }
    const pglite = await PGlite.create(pgdata, { startParams: [...PGlite.defaultStartParams, ...EMBEDDED_SETTINGS] });
    await restrictToOwner(pgdata);
    return {
      pglite,
      async close() {
        try {
          await pglite.close();
        } finally {
          release();
        }
      },
    };
  } catch (error) {
    release();
    throw error;
  }
}
