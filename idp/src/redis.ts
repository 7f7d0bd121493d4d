import { Redis } from 'ioredis';
import type { Config } from '@jobswipe/config';
import { StartupError } from './store.ts';

/**
 * The Redis connection for the hot models. Commands fail fast while Redis is away (no offline queue,
 * 2 s timeouts) so a request answers 503 instead of hanging; the client reconnects by itself.
 * Commands issued in the same turn of the event loop (concurrent requests) go out in one write.
 */
export async function connectRedis(config: NonNullable<Config['redis']>): Promise<Redis> {
  const client = new Redis(config.url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2_000,
    commandTimeout: 2_000,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
  });
  // Connection errors surface through failed commands and /readyz; the event only needs a listener.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (error) {
    client.disconnect();
    const url = new URL(config.url);
    throw new StartupError(`cannot reach Redis at ${url.hostname}:${url.port || 6379}: ${(error as Error).message}`);
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
