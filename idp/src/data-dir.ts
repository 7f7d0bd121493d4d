import { chmod, mkdir, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Config } from '@jobswipe/config';

/** DATA_DIR is missing and cannot be created: a configuration problem (exit 2), named in one line. */
export class DataDirError extends Error {
  readonly path: string;

  constructor(path: string, code: string) {
    super(`DATA_DIR ${path} cannot be created (${code}); point DATA_DIR at a directory this user may create`);
    this.name = 'DataDirError';
    this.path = path;
  }
}

/** Only the owner may enter DATA_DIR: it holds the embedded store, generated keys, mails and the admin socket. */
export const DATA_DIR_MODE = 0o700;
/** Every file written in DATA_DIR. */
export const DATA_FILE_MODE = 0o600;
/**
 * The entry points' umask: PGlite creates the embedded store's files itself, so only the umask makes
 * them 0600 in 0700 directories. Our own files get their modes explicitly as well.
 */
export const OWNER_ONLY_UMASK = 0o077;

/**
 * Outside production, creates DATA_DIR (mode 0700 whatever the umask) when it is missing, for the
 * server and every CLI command. Tells whether the directory is open to group or others, to warn.
 */
export async function prepareDataDir(config: Pick<Config, 'dataDir' | 'production'>): Promise<{ path: string; openToOthers: boolean }> {
  const path = resolve(config.dataDir);
  if (!config.production) {
    try {
      await makeDataDirectory(path);
    } catch (error) {
      throw new DataDirError(path, (error as NodeJS.ErrnoException).code ?? (error as Error).message);
    }
  }
  const mode = await stat(path).then(
    (stats) => stats.mode,
    () => 0,
  );
  return { path, openToOthers: (mode & 0o077) !== 0 };
}

/** The start-up warning for a DATA_DIR others may read: its path and the fix. */
export function openDataDirWarning(path: string): string {
  return `DATA_DIR ${path} is open to other users; run \`chmod 700 ${path}\``;
}

/**
 * Creates a directory in (or as) DATA_DIR, 0700 whatever the umask: mkdir's mode is narrowed by the
 * umask, so chmod sets it exactly. An existing directory is left as it is (the start-up warning covers it).
 */
export async function makeDataDirectory(path: string): Promise<void> {
  if (await mkdir(path, { recursive: true, mode: DATA_DIR_MODE })) await chmod(path, DATA_DIR_MODE);
}

/** Writes a new file in DATA_DIR, 0600 whatever the umask; never over an existing file or link (EEXIST). */
export async function writeDataFile(path: string, content: string | Uint8Array): Promise<void> {
  await writeFile(path, content, { mode: DATA_FILE_MODE, flag: 'wx' });
  await chmod(path, DATA_FILE_MODE);
}
