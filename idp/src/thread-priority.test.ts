import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { namesThreadpoolThreads } from './thread-priority.ts';

const run = promisify(execFile);
const module = fileURLToPath(new URL('./thread-priority.ts', import.meta.url));
const threadsModule = fileURLToPath(new URL('../../test/support/threads.ts', import.meta.url));


describe('lowerThreadpoolPriority', () => {
  it('lowers every threadpool thread of the process, and only those (Linux; elsewhere nothing)', async () => {
    if (process.platform !== 'linux') {
      const { lowerThreadpoolPriority } = await import('./thread-priority.ts');
      expect(await lowerThreadpoolPriority(10)).toBe(0);
      return;
    }
    // In a process of its own: the test runner's threads keep their priority.
    const script = `
      const { lowerThreadpoolPriority } = await import(${JSON.stringify(module)});
      const { threadsOf } = await import(${JSON.stringify(threadsModule)});
      const lowered = await lowerThreadpoolPriority(10);
      const threads = await threadsOf();
      process.stdout.write(JSON.stringify({ lowered, threads, uv: process.versions.uv }));`;
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { timeout: 20_000 });
    const { lowered, threads, uv } = JSON.parse(stdout) as { lowered: number; threads: Array<{ name: string; nice: number }>; uv: string };
    const pool = threads.filter((thread) => thread.name === 'libuv-worker');
    if (namesThreadpoolThreads(uv)) {
      expect(pool.length).toBeGreaterThanOrEqual(1);
      expect(lowered).toBe(pool.length);
      expect(pool.every((thread) => thread.nice === 10)).toBe(true);
    } else {
      // Older libuv does not name them: nothing is found, nothing changes.
      expect(lowered).toBe(0);
    }
    expect(threads.filter((thread) => thread.name !== 'libuv-worker').every((thread) => thread.nice === 0)).toBe(true);
  });
});
