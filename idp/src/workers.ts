import cluster, { type Worker } from 'node:cluster';
import type { Config } from '@jobswipe/config';
import type { Logger } from './logger.ts';
import { prepareDataDir } from './data-dir.ts';
import { developmentCookieKeys } from './secrets.ts';
import { loadKek } from './signing-keys.ts';
import { clusterScraper } from './metrics/cluster.ts';
import { listenForScrapes } from './metrics/listener.ts';

/** A worker that dies sooner than this after starting counts as failing to start. */
const EARLY_EXIT_MS = 10_000;
/** Consecutive early exits after which the group gives up (a port in use, a store that refuses us). */
const MAX_EARLY_EXITS = 5;
const RESTART_DELAY_MS = 1_000;

/**
 * WORKERS=N: this process supervises N server processes that share the port (node:cluster; the
 * primary hands connections out in turn). Each worker is a whole server with its own pools; the
 * shared state is in Postgres and Redis, as with servers on several machines. A worker that dies is
 * replaced; SIGTERM or SIGINT stops them all, each with its shutdown grace. The supervisor serves
 * the metrics listener: one scrape gathers every worker's metrics. Resolves with the exit code.
 */
export async function superviseWorkers(config: Config, log: Logger, hardStopMs: number): Promise<number> {
  // Generated development secrets are written once, here, not raced for by the workers.
  await prepareDataDir(config);
  if (!config.cookieKeys) await developmentCookieKeys(config.dataDir);
  await loadKek(config);
  const metrics = await listenForScrapes(config.metrics, clusterScraper(), log);

  let stopping = false;
  let earlyExits = 0;
  const started = new Map<Worker, number>();
  const fork = () => {
    const worker = cluster.fork();
    started.set(worker, Date.now());
  };

  return new Promise<number>((resolve) => {
    let code = 0;
    const done = () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) void metrics.close().then(() => resolve(code));
    };
    cluster.on('exit', (worker, exitCode, signal) => {
      const lived = Date.now() - (started.get(worker) ?? Date.now());
      started.delete(worker);
      if (stopping) {
        // A worker still loading when the stop came ends by the signal itself: it had nothing in flight.
        if (exitCode !== 0 && signal !== 'SIGTERM') {
          log.error({ pid: worker.process.pid, exitCode, signal }, 'server worker did not stop cleanly');
          code = 1;
        }
        done();
        return;
      }
      earlyExits = lived < EARLY_EXIT_MS ? earlyExits + 1 : 0;
      log.error({ pid: worker.process.pid, exitCode, signal, lived }, 'server worker exited');
      if (earlyExits >= MAX_EARLY_EXITS) {
        log.error({ exits: earlyExits }, 'server workers keep failing to start; stopping');
        code = 1;
        stop();
        return;
      }
      setTimeout(() => {
        if (!stopping) fork();
      }, RESTART_DELAY_MS);
    });
    const stop = () => {
      if (stopping) return;
      stopping = true;
      const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
      for (const worker of workers) worker.process.kill('SIGTERM');
      setTimeout(() => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
        code = 1;
      }, hardStopMs).unref();
      done();
    };
    process.once('SIGTERM', () => {
      log.info({ signal: 'SIGTERM' }, 'shutting down the server workers');
      stop();
    });
    process.once('SIGINT', () => {
      log.info({ signal: 'SIGINT' }, 'shutting down the server workers');
      stop();
    });
    for (let i = 0; i < config.workers; i += 1) fork();
    log.info({ workers: config.workers, pid: process.pid, metrics: metrics.url }, 'server workers starting');
  });
}
