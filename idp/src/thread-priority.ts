import { randomFill } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { setPriority } from 'node:os';

/**
 * Lowers the scheduling priority of libuv's threadpool in this process (Linux): password hashes
 * (bcrypt, a quarter of a second of CPU each) run there, and with more of them at once than cores
 * they would take the cores from the event loop, and every other request would wait behind them.
 * At a lower priority they get what the event loop leaves: as much as before when it is idle.
 *
 * Linux schedules threads one by one, and setpriority on a thread id applies to that thread. The
 * threadpool's threads are named `libuv-worker` (libuv 1.50, Node 22.13/23.6 and later); on older
 * Node or another system nothing is found and nothing changes. Returns how many threads were lowered.
 */
/** Whether this libuv names its threadpool's threads (`libuv-worker`, from 1.50: Node 22.13, 23.6, 24). */
export function namesThreadpoolThreads(uv = process.versions.uv): boolean {
  const [major = 0, minor = 0] = uv.split('.').map(Number);
  return major > 1 || (major === 1 && minor >= 50);
}

export async function lowerThreadpoolPriority(niceness: number): Promise<number> {
  if (process.platform !== 'linux') return 0;
  // The pool starts with its first job: make sure it exists.
  await new Promise((resolveFill) => randomFill(Buffer.alloc(1), resolveFill));
  let lowered = 0;
  for (const thread of await readdir('/proc/self/task').catch(() => [] as string[])) {
    const name = await readFile(`/proc/self/task/${thread}/comm`, 'utf8').catch(() => '');
    if (name.trim() !== 'libuv-worker') continue;
    try {
      setPriority(Number(thread), niceness);
      lowered += 1;
    } catch {
      // Gone, or not ours to change: leave it.
    }
  }
  return lowered;
}
