import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import type { SecretStorage } from './secret-storage.ts';

/** What a signed-in app keeps between runs. Only ever written encrypted. */
export const storedSessionSchema = z.object({
  version: z.literal(1),
  issuer: z.string(),
  clientId: z.string(),
  refreshToken: z.string().min(1),
  accessToken: z.string().optional(),
  /** Seconds since the epoch. */
  accessTokenExpiresAt: z.number().optional(),
  idToken: z.string().optional(),
  user: z.object({ sub: z.string(), email: z.string().optional(), name: z.string().optional() }),
});
export type StoredSession = z.infer<typeof storedSessionSchema>;

export interface TokenStore {
  /** False when tokens live in memory only (no encryption available, or no file given). */
  readonly persistent: boolean;
  load(): Promise<StoredSession | undefined>;
  save(session: StoredSession): Promise<void>;
  clear(): Promise<void>;
}

export class TokenFileError extends Error {
  readonly code = 'ERR_TOKEN_FILE';
}

export function memoryTokenStore(): TokenStore {
  let current: StoredSession | undefined;
  return {
    persistent: false,
    async load() {
      return current;
    },
    async save(session) {
      current = session;
    },
    async clear() {
      current = undefined;
    },
  };
}

/**
 * One encrypted file. Written to a temporary file (mode 0600) and renamed over the old one, so a
 * crash leaves either the old or the new session, never half of one.
 */
export function fileTokenStore(path: string, storage: SecretStorage): TokenStore {
  if (!storage.isEncryptionAvailable()) throw new TokenFileError('no encryption is available: refusing to store tokens on disk');
  return {
    persistent: true,
    async load() {
      let sealed: Buffer;
      try {
        sealed = await readFile(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw error;
      }
      const parsed = storedSessionSchema.safeParse(JSON.parse(storage.decryptString(sealed)));
      if (!parsed.success) throw new TokenFileError(`${path} does not hold a session this app can use`);
      return parsed.data;
    },
    async save(session) {
      const sealed = storage.encryptString(JSON.stringify(storedSessionSchema.parse(session)));
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
      await writeFile(temporary, sealed, { mode: 0o600, flag: 'wx' });
      try {
        await rename(temporary, path);
      } catch (error) {
        await rm(temporary, { force: true });
        throw error;
      }
    },
    async clear() {
      await rm(path, { force: true });
    },
  };
}
