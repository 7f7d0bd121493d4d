import { Redis, type RedisOptions } from 'ioredis';
import type { RedisConfig } from '@jobswipe/config';
import { StartupError } from './store.ts';

const COMMON: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  enableAutoPipelining: true,
  maxRetriesPerRequest: 1,
  connectTimeout: 2_000,
  commandTimeout: 2_000,
  retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
};

/**
 * Through Sentinels: the client asks them for the primary at every connection, hears of a failover
 * as it happens (failoverDetector), and reconnects when a command meets a primary demoted meanwhile
 * (READONLY): that command fails (503), the next ones reach the new primary.
 */
function sentinelClient(config: Extract<RedisConfig, { kind: 'sentinel' }>): Redis {
  return new Redis({
    ...COMMON,
    sentinels: config.sentinels,
    name: config.master,
    role: 'master',
    password: config.password,
    sentinelPassword: config.sentinelPassword,
    failoverDetector: true,
    sentinelRetryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 1 : false),
  });
}

/** Where the client connects, for a start-up error: never a password. */
function describe(config: RedisConfig): string {
  if (config.kind === 'sentinel') return `the primary "${config.master}" through the Sentinels at ${config.sentinels.map((sentinel) => `${sentinel.host}:${sentinel.port}`).join(', ')}`;
  const url = new URL(config.url);
  return `Redis at ${url.hostname}:${url.port || 6379}`;
}

/**
 * The Redis connection for the hot models. Commands fail fast while Redis is away (no offline queue,
 * 2 s timeouts) so a request answers 503 instead of hanging; the client reconnects by itself.
 * Commands issued in the same turn of the event loop (concurrent requests) go out in one write.
 */
export async function connectRedis(config: RedisConfig): Promise<Redis> {
  const client = config.kind === 'sentinel' ? sentinelClient(config) : new Redis(config.url, COMMON);
  // Connection errors surface through failed commands and /readyz; the event only needs a listener.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    throw new StartupError(`cannot reach ${describe(config)}: ${(error as Error).message}`);
  }
  return client;
}

export async function redisReady(client: Redis): Promise<boolean> {
  try {
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  }
}
