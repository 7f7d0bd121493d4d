import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { makeDataDirectory, writeDataFile } from './data-dir.ts';

const secretsFile = z.object({ cookieKeys: z.array(z.string().min(32)).min(1) });

/**
 * Outside production, cookie keys nobody configured are generated once and kept in DATA_DIR, so
 * sessions survive restarts. Production refuses to start without configured keys (see config/).
 */
export async function developmentCookieKeys(dataDir: string): Promise<string[]> {
  const path = join(dataDir, 'secrets.json');
  try {
    return secretsFile.parse(JSON.parse(await readFile(path, 'utf8'))).cookieKeys;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new Error(`${path} is unreadable or malformed; delete it to generate new development keys`);
    }
  }
  const cookieKeys = [randomBytes(32).toString('base64url')];
  await makeDataDirectory(dataDir);
  await writeDataFile(path, `${JSON.stringify({ cookieKeys }, null, 2)}\n`).catch((error: unknown) => {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  });
  return secretsFile.parse(JSON.parse(await readFile(path, 'utf8'))).cookieKeys;
}
