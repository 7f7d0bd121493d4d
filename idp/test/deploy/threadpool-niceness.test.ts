import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { namesThreadpoolThreads } from '../../src/thread-priority.ts';
import { freePort, spawnNode, type Running } from '../../../test/support/processes.ts';
import { createTestStore, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { threadsOf } from '../../../test/support/threads.ts';
import { statusOf, until } from '../../../test/support/waiting.ts';

/*
 * THREADPOOL_NICENESS, as `npm start` runs the server: the threadpool's threads (named libuv-worker
 * from libuv 1.50: Node 22.13 and 24) get the niceness asked for, the other threads keep theirs, and
 * 0 leaves every thread as it was. Linux only (elsewhere the setting changes nothing).
 */

describe('THREADPOOL_NICENESS (a server process)', () => {
  let store: TestStore;
  const running: Running[] = [];

  beforeAll(async () => {
    store = await createTestStore('postgres');
  });

  afterAll(async () => {
    await Promise.all(running.map((server) => server.stop()));
    await store?.drop();
  });

  async function start(niceness: string | undefined): Promise<Running> {
    const port = await freePort();
    const server = spawnNode('idp/src/main.ts', [], {
      ...storeEnvironment(store),
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      ...(niceness === undefined ? {} : { THREADPOOL_NICENESS: niceness }),
    });
    running.push(server);
    await until(async () => ((await statusOf(`http://127.0.0.1:${port}/readyz`)) === 200 ? true : undefined), 'the server to be ready', 60_000);
    return server;
  }

  it('gives the threadpool the niceness asked for (default 10), and no other thread', async () => {
    for (const [given, expected] of [[undefined, 10], ['5', 5]] as const) {
      const server = await start(given);
      // Elsewhere the setting is accepted and changes nothing.
      if (process.platform !== 'linux') continue;
      const pid = server.child.pid!;
      const threads = await until(async () => {
        const now = await threadsOf(pid);
        const pool = now.filter((thread) => thread.name === 'libuv-worker');
        return !namesThreadpoolThreads() || (pool.length > 0 && pool.every((thread) => thread.nice === expected)) ? now : undefined;
      }, `the threadpool at niceness ${expected}`, 10_000);
      if (namesThreadpoolThreads()) expect(threads.filter((thread) => thread.name === 'libuv-worker').length).toBeGreaterThan(0);
      else expect(threads.some((thread) => thread.name === 'libuv-worker')).toBe(false);
      expect(threads.filter((thread) => thread.name !== 'libuv-worker').every((thread) => thread.nice === 0), JSON.stringify(threads)).toBe(true);
      await server.stop();
    }
  }, 120_000);

  it('leaves every thread as it was with THREADPOOL_NICENESS=0', async () => {
    const server = await start('0');
    if (process.platform !== 'linux') return;
    // The pool has started by now (the keystore's crypto and file reads run there); after a second any
    // lowering would have been done.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const threads = await threadsOf(server.child.pid!);
    if (namesThreadpoolThreads()) expect(threads.filter((thread) => thread.name === 'libuv-worker').length).toBeGreaterThan(0);
    expect(threads.every((thread) => thread.nice === 0), JSON.stringify(threads)).toBe(true);
    await server.stop();
  }, 90_000);
});
