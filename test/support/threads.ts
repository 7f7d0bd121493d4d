import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A thread of a process (Linux): its name and its niceness, from /proc. */
export interface Thread {
  name: string;
  nice: number;
}

/** The threads of `pid` (or of this process) with their names and niceness; threads that end meanwhile are left out. */
export async function threadsOf(pid: number | 'self' = 'self'): Promise<Thread[]> {
  const threads: Thread[] = [];
  for (const id of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${id}/stat`, 'utf8').catch(() => undefined);
    const name = await readFile(`/proc/${pid}/task/${id}/comm`, 'utf8').catch(() => undefined);
    if (stat === undefined || name === undefined) continue;
    // After the name in parentheses (which may hold spaces): state is field 3, nice field 19.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    threads.push({ name: name.trim(), nice: Number(fields[16]) });
  }
  return threads;
}

/**
 * Holds every libuv threadpool thread of this process until the returned function is called: each
 * blocks opening a FIFO that has no writer yet, as threads stay busy with bcrypt hashes under sign-in
 * load. Release opens each FIFO for writing from another process (spawning needs no pool thread).
 */
export async function holdThreadpool(): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'jobswipe-threadpool-'));
  const threads = Number(process.env['UV_THREADPOOL_SIZE'] ?? 4);
  const fifos = Array.from({ length: threads }, (_, index) => join(dir, `fifo-${index}`));
  execFileSync('mkfifo', fifos);
  const opened = fifos.map((fifo) => open(fifo, 'r'));
  return async () => {
    await new Promise<void>((resolve, reject) => {
      spawn('sh', ['-c', 'for fifo do : > "$fifo"; done', 'sh', ...fifos], { stdio: 'ignore' })
        .on('error', reject)
        .on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`the FIFO writer ended with ${code}`))));
    });
    for (const handle of await Promise.all(opened)) await handle.close();
    await rm(dir, { recursive: true, force: true });
  };
}
