import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ownLines, runToExit, spawnNode, type Running } from '../../../test/support/processes.ts';
import { createTestStore, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { statusOf, until } from '../../../test/support/waiting.ts';

const SERVER_ENTRY = 'idp/src/main.ts';

/** The pids of the processes whose parent is `pid` (from /proc). */
async function childrenOf(pid: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid && (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).includes('main.ts')) children.push(Number(entry));
  }
  return children.sort();
}



describe('WORKERS', () => {
  it('more than one on the embedded store is refused at start, naming WORKERS', async () => {
    const result = await runToExit(SERVER_ENTRY, [], { WORKERS: '2', DATA_DIR: '/tmp/jobswipe-workers-refused' }, 20_000);
    expect(result.code).toBe(2);
    expect(ownLines(result.stderr).join('\n')).toMatch(/WORKERS.*DATABASE_URL/);
  }, 30_000);

  describe('WORKERS=2 on Postgres', () => {
    let store: TestStore;
    let server: Running | undefined;
    let base: string;

    beforeAll(async () => {
      store = await createTestStore('postgres');
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      server = spawnNode(SERVER_ENTRY, [], { ...storeEnvironment(store), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', WORKERS: '2' });
      await until(async () => ((await statusOf(`${base}/readyz`)) === 200 ? true : undefined), 'the workers to be ready', 60_000);
    }, 90_000);

    afterAll(async () => {
      await server?.stop();
      await store?.drop();
    });

    it('runs two server processes on one port, replaces one that dies, and stops them all on SIGTERM', async () => {
      const primary = server!.child.pid!;
      const workers = await until(async () => {
        const found = await childrenOf(primary);
        return found.length === 2 ? found : undefined;
      }, 'two worker processes', 20_000);

      const answers = await Promise.all(Array.from({ length: 40 }, () => statusOf(`${base}/.well-known/openid-configuration`)));
      expect(answers.every((answer) => answer === 200)).toBe(true);

      process.kill(workers[0]!, 'SIGKILL');
      // The other worker answers meanwhile; new connections never go to the dead one.
      await sleep(200);
      const during = await Promise.all(Array.from({ length: 20 }, () => statusOf(`${base}/jwks`)));
      expect(during.every((answer) => answer === 200)).toBe(true);
      const replaced = await until(async () => {
        const found = await childrenOf(primary);
        return found.length === 2 && !found.includes(workers[0]!) ? found : undefined;
      }, 'a replacement worker', 30_000);
      expect(replaced).toContain(workers[1]);
      await until(async () => ((await statusOf(`${base}/readyz`)) === 200 ? true : undefined), 'ready again', 30_000);

      server!.signal('SIGTERM');
      expect(await Promise.race([server!.exited, sleep(15_000).then(() => 'still running')])).toBe(0);
      expect(await childrenOf(primary)).toEqual([]);
      for (const pid of replaced) expect(() => process.kill(pid, 0)).toThrow();
    }, 90_000);
  });
});
