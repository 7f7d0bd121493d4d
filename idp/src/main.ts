import { StoreInUseError } from '@jobswipe/adapters';
import { ConfigError, loadConfig, type Config } from '@jobswipe/config';
import { KeystoreError } from '@jobswipe/keystore';
import { DataDirError, OWNER_ONLY_UMASK } from './data-dir.ts';
import cluster from 'node:cluster';
import { createLogger, serverLogDestination } from './logger.ts';
import { superviseWorkers } from './workers.ts';
import { StartupError } from './store.ts';

const HARD_STOP_MS = 10_000;

process.umask(OWNER_ONLY_UMASK);

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}

const logDestination = serverLogDestination();
/** Exits once the log lines still queued are written. */
const exit = (code: number): never => {
  logDestination.flushSync();
  process.exit(code);
};

if (config.workers > 1 && cluster.isPrimary) {
  try {
    exit(await superviseWorkers(config, createLogger(config.logLevel, logDestination), HARD_STOP_MS + 2_000));
  } catch (error) {
    process.stderr.write(`jobswipe-identity: ${(error as Error).message}\n`);
    exit(2);
  }
}

// A stop asked for while the server starts takes effect once it has started (then it closes cleanly).
let stopSignal: NodeJS.Signals | undefined;
let shutDown: ((signal: NodeJS.Signals) => void) | undefined;
const stop = (signal: NodeJS.Signals) => {
  stopSignal ??= signal;
  shutDown?.(signal);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

try {
  // Loaded here, not above: a WORKERS supervisor never serves, and stays small without the server's modules.
  const [{ startServer }, { lowerThreadpoolPriority }] = await Promise.all([import('./server.ts'), import('./thread-priority.ts')]);
  const server = await startServer(config, { logDestination });
  // bcrypt runs in the threadpool: it gets the cores the event loop leaves (docs/scaling.md).
  const lowered = config.threadpoolNiceness > 0 ? await lowerThreadpoolPriority(config.threadpoolNiceness) : 0;
  server.log.debug({ threads: lowered }, 'threadpool priority lowered');
  shutDown = (signal) => {
    shutDown = undefined;
    server.log.info({ signal }, 'shutting down');
    setTimeout(() => exit(1), HARD_STOP_MS).unref();
    server.close().then(
      () => exit(0),
      (error: unknown) => {
        server.log.error({ err: error }, 'shutdown failed');
        exit(1);
      },
    );
  };
  if (stopSignal) shutDown(stopSignal);
} catch (error) {
  // A wrong or missing key-encryption key is a configuration problem: exit 2, like invalid settings.
  if (error instanceof KeystoreError) {
    process.stderr.write(`jobswipe-identity: signing keys: ${error.message}\n`);
    exit(2);
  }
  if (error instanceof DataDirError) {
    process.stderr.write(`jobswipe-identity: ${error.message}\n`);
    exit(2);
  }
  if (error instanceof StartupError || error instanceof StoreInUseError) {
    process.stderr.write(`jobswipe-identity: ${error.message}\n`);
    exit(1);
  }
  logDestination.flushSync();
  throw error;
}
