import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { loadConfig } from '@jobswipe/config';
import { startServer, type RunningServer, type StartOptions } from '@jobswipe/idp';
import { withGeneratedCredentials, type Metadata } from '../../idp/src/clients/registry.ts';
import { checkUpstream } from '../../idp/src/upstreams/settings.ts';
import { freePort } from './processes.ts';
import { scanKeys, TEST_REDIS_URL } from './redis.ts';
import { createTestStore, storeEnvironment, type StoreKind, type TestStore } from './stores.ts';

export interface TestServer {
  issuer: string;
  server: RunningServer;
  store: TestStore;
  /** Every log line the server wrote, as raw JSON text. */
  logs: string[];
  registerClient(metadata: Record<string, unknown>): Promise<Metadata>;
  createUser(user: { email: string; password: string; name?: string; emailVerified?: boolean }): Promise<{ id: string }>;
  /** Configures an upstream identity provider from a seed entry (docs/social-login.md), as `idp import` does. */
  registerUpstream(entry: Record<string, unknown>): Promise<void>;
  stop(): Promise<void>;
}

const ALL_SETUPS = ['embedded', 'postgres', 'postgres+redis'] as const;
export type ServerSetup = (typeof ALL_SETUPS)[number];

/**
 * The server set-ups end-to-end suites run against: each store alone, and Postgres with Redis.
 * TEST_SERVER_SETUPS (a comma-separated list of them) narrows a run, as CI's second Node does; an
 * unknown name fails the run rather than running nothing.
 */
export const SERVER_SETUPS: readonly ServerSetup[] = (() => {
  const chosen = process.env['TEST_SERVER_SETUPS'];
  if (!chosen) return ALL_SETUPS;
  const names = chosen.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(ALL_SETUPS as readonly string[]).includes(name));
  if (unknown.length > 0 || names.length === 0) throw new Error(`TEST_SERVER_SETUPS names no set-up of ${ALL_SETUPS.join(', ')}: ${unknown.join(', ')}`);
  return ALL_SETUPS.filter((setup) => names.includes(setup));
})();

export { TEST_REDIS_URL };

/**
 * `options.store` restarts on an existing store (with PORT in env, on the same port): stop() then
 * leaves the store to its owner.
 */
export async function startTestServer(
  setup: StoreKind | ServerSetup,
  env: Record<string, string> = {},
  options: { store?: TestStore; start?: Omit<StartOptions, 'logDestination'> } = {},
): Promise<TestServer> {
  const kind: StoreKind = setup === 'embedded' ? 'embedded' : 'postgres';
  const redisPrefix = setup === 'postgres+redis' ? `jobswipe-test:${randomUUID()}:` : undefined;
  const store = options.store ?? (await createTestStore(kind));
  const port = env['PORT'] ? Number(env['PORT']) : await freePort();
  const issuer = `http://localhost:${port}`;
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, callback) {
      logs.push(String(chunk));
      callback();
    },
  });
  const config = loadConfig({
    ...storeEnvironment(store),
    PORT: String(port),
    ISSUER: issuer,
    LOG_LEVEL: 'info',
    // A free port each: suites run servers side by side (RunningServer.metricsUrl says where).
    METRICS_PORT: '0',
    ...(redisPrefix ? { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: redisPrefix } : {}),
    ...env,
  });
  const server = await startServer(config, { ...options.start, logDestination: destination });
  // The server's own libraries: they check the clients a test registers as the CLI does, and its keys seal their secrets.
  const { accounts, clients, upstreams } = server.libraries;
  return {
    issuer,
    server,
    store,
    logs,
    async registerClient(metadata) {
      const filled = withGeneratedCredentials(metadata);
      await clients.validate(filled);
      await clients.save(filled);
      return filled;
    },
    async createUser(user) {
      return accounts.create({
        email: user.email,
        name: user.name ?? 'Test User',
        password: user.password,
        emailVerified: user.emailVerified ?? true,
      });
    },
    async registerUpstream(entry) {
      await upstreams.save(checkUpstream(entry));
    },
    async stop() {
      await server.close();
      if (!options.store) await store.drop();
      if (redisPrefix) await deleteRedisKeys(redisPrefix);
    },
  };
}

async function deleteRedisKeys(prefix: string): Promise<void> {
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true });
  await redis.connect();
  try {
    const keys = await scanKeys(redis, `${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
}
