import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { baseEnvironment, ownLines, ROOT, TYPESCRIPT_LOADER } from '../../../test/support/processes.ts';

describe('CLI output into a pipe its reader closed', () => {
  let dataDir: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'idp-closed-output-'));
  });

  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('ends with status 0 and nothing on stderr (`idp --help | head -1`), not with an EPIPE stack trace', async () => {
    const child = spawn(process.execPath, ['--import', TYPESCRIPT_LOADER, 'idp/src/cli/main.ts', '--help'], {
      cwd: ROOT,
      env: { ...baseEnvironment(), DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    // The reader is gone before the command writes its first line.
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, 'close')) as [number | null];
    expect(ownLines(stderr)).toEqual([]);
    expect(code).toBe(0);
  });
});
