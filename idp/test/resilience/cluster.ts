import { createHash, randomBytes } from 'node:crypto';
import { request as httpRequest, createServer, Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort, runToExit, serverNodeFlags, spawnNode, type Running } from '../../../test/support/processes.ts';
import { startPrivatePostgres, startPrivateRedis, type PrivatePostgres, type PrivateRedis } from '../../../test/support/private-services.ts';

/**
 * A deployment in miniature for the resilience suites: a private Postgres and a private Redis (which a
 * test may stop and restart), one or more provider processes (`idp/src/main.ts`) on them, and a small
 * load balancer in front that sends each request to a live process, as a real one would.
 */

export const WEB_SECRET = 'resilience-web-secret-0123456789abcdef';
export const WORKER_SECRET = 'resilience-worker-secret-0123456789abcdef';
export const CALLBACK = 'http://localhost:3000/callback';
export const USERS = ['ada', 'grace', 'edsger', 'barbara'].map((name) => ({ email: `${name}@example.com`, password: `${name} keeps signing in twice daily` }));

export interface Provider {
  name: string;
  port: number;
  process: Running;
}

export interface Cluster {
  postgres: PrivatePostgres;
  redis: PrivateRedis;
  databaseUrl: string;
  /** The load balancer's URL: the issuer every process publishes. */
  issuer: string;
  providers: Provider[];
  balancer: Balancer;
  poolMax: number;
  /** A superuser connection to the provider's database, for counting rows. */
  inspect: pg.Pool;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  processes: number;
  poolMax?: number;
}

const kek = randomBytes(32).toString('base64');
const cookieKey = randomBytes(32).toString('base64url');

function providerEnvironment(databaseUrl: string, redisUrl: string, issuer: string, dataDir: string, poolMax: number): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: 'resilience:',
    ISSUER: issuer,
    HOST: '127.0.0.1',
    KEYSTORE_KEK: kek,
    COOKIE_KEYS: cookieKey,
    DATA_DIR: dataDir,
    TRUST_PROXY: 'loopback',
    // The traffic comes from two clients: their own request budget must not be what refuses them.
    TOKEN_RATE_LIMIT_PER_MINUTE: '1000000',
    DATABASE_POOL_MAX: String(poolMax),
    LOG_LEVEL: 'warn',
    // As `npm start` and the Docker image run it (the soak measures its memory).
    NODE_OPTIONS: '--max-semi-space-size=4',
    MALLOC_ARENA_MAX: '2',
  };
}

async function waitForHealth(url: string, running: Running, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
    if (running.child.exitCode !== null) throw new Error(`provider exited: ${running.stderr()}`);
    try {
      if ((await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2_000) })).status === 200) return;
    } catch {
      // not listening yet
    }
  }
  throw new Error(`provider at ${url} not ready: ${running.stderr()}`);
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const poolMax = options.poolMax ?? 10;
  const postgres = await startPrivatePostgres();
  const cleanups: Array<() => Promise<unknown>> = [() => postgres.destroy()];
  try {
    const redis = await startPrivateRedis();
    cleanups.push(() => redis.destroy());
    const databaseUrl = await postgres.createDatabase('jobswipe');
    const dataDir = await mkdtemp(join(tmpdir(), 'jobswipe-resilience-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const balancer = await startBalancer();
    cleanups.push(() => balancer.close());
    const env = providerEnvironment(databaseUrl, redis.url, balancer.url, dataDir, poolMax);

    const seed = join(dataDir, 'seed.json');
    await writeFile(seed, JSON.stringify({
      clients: [
        { client_id: 'web', client_secret: WEB_SECRET, redirect_uris: [CALLBACK], grant_types: ['authorization_code', 'refresh_token'], first_party: true },
        { client_id: 'worker', client_secret: WORKER_SECRET, redirect_uris: [], response_types: [], grant_types: ['client_credentials'], scope: 'api:read' },
      ],
      users: USERS.map((user) => ({ ...user, name: 'Resilience', email_verified: true })),
    }));
    for (const args of [['migrate'], ['import', '--file', seed]]) {
      const done = await runToExit('idp/src/cli/main.ts', args, env, 120_000);
      if (done.code !== 0) throw new Error(`idp ${args.join(' ')} failed: ${done.stderr}`);
    }

    const providers: Provider[] = [];
    cleanups.push(() => Promise.all(providers.map((provider) => provider.process.stop())));
    for (let index = 0; index < options.processes; index += 1) {
      const port = await freePort();
      // As deployed: `npm start`'s Node flags (and the image's MALLOC_ARENA_MAX above).
      const running = spawnNode('idp/src/main.ts', [], { ...env, PORT: String(port) }, undefined, serverNodeFlags(), { ownSession: true });
      providers.push({ name: String.fromCharCode(65 + index), port, process: running });
    }
    for (const provider of providers) await waitForHealth(`http://127.0.0.1:${provider.port}`, provider.process);
    balancer.backends.push(...providers.map((provider) => provider.port));

    const inspect = new pg.Pool({ connectionString: databaseUrl, max: 2, application_name: 'resilience-inspect' });
    inspect.on('error', () => {});
    cleanups.push(() => inspect.end());
    return {
      postgres,
      redis,
      databaseUrl,
      issuer: balancer.url,
      providers,
      balancer,
      poolMax,
      inspect,
      async stop() {
        for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
      },
    };
  } catch (error) {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
    throw error;
  }
}

/** VmRSS of a process in MB, from /proc. */
export async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
  return Math.round((kb / 1024) * 10) / 10;
}

export interface Balancer {
  url: string;
  /** Ports of the provider processes, tried in turn. */
  backends: number[];
  /** POST requests whose process died under them (answered 502, as a load balancer does). */
  lostInFlight: number;
  /** Requests sent on to another process after the first refused the connection. */
  failedOver: number;
  close(): Promise<void>;
}

/**
 * Round robin over the backends. A refused connection (the process is gone) is retried on the next
 * backend at once, and that backend is tried last for a second; a request whose process died while
 * handling it is retried if it is a GET and answered 502 otherwise (a POST may have done its work).
 */
async function startBalancer(): Promise<Balancer> {
  // Idle connections are closed after 2 s, before the provider's 5 s keep-alive timeout: a request is
  // never sent on a connection the provider is closing (which, for a POST, could not be retried).
  const agent = new Agent({ keepAlive: true, maxSockets: 64, timeout: 2_000 });
  const port = await freePort();
  let next = 0;
  /** Backends that refused a connection, until when they are tried last (a passive health check). */
  const down = new Map<number, number>();
  const balancer: Balancer = {
    url: `http://127.0.0.1:${port}`,
    backends: [],
    lostInFlight: 0,
    failedOver: 0,
    close: async () => {},
  };
  const forward = (backend: number, method: string, path: string, headers: IncomingHttpHeaders, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const upstream = httpRequest({ host: '127.0.0.1', port: backend, method, path, headers, agent }, (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 502, headers: response.headers, body: Buffer.concat(chunks) }));
        response.on('error', reject);
      });
      upstream.on('error', reject);
      upstream.end(body);
    });
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks);
        const headers = { ...req.headers };
        // Each backend once, in turn from the next one; those that refused a connection lately last.
        const start = next++;
        const now = Date.now();
        const order = balancer.backends
          .map((_, index) => balancer.backends[(start + index) % balancer.backends.length]!)
          .sort((a, b) => Number((down.get(a) ?? 0) > now) - Number((down.get(b) ?? 0) > now));
        for (const backend of order) {
          try {
            const answer = await forward(backend, req.method ?? 'GET', req.url ?? '/', headers, body);
            res.writeHead(answer.status, answer.headers);
            res.end(answer.body);
            return;
          } catch (error) {
            const { code } = error as NodeJS.ErrnoException;
            // Nothing reached the process (or it is a GET, which may be sent again): try the next one.
            if (code === 'ECONNREFUSED' || req.method === 'GET') {
              if (code === 'ECONNREFUSED') down.set(backend, Date.now() + 1_000);
              balancer.failedOver += 1;
              continue;
            }
            balancer.lostInFlight += 1;
            res.writeHead(502, { 'content-type': 'application/json', 'x-balancer': 'upstream lost' });
            res.end(JSON.stringify({ error: 'bad_gateway' }));
            return;
          }
        }
        res.writeHead(502, { 'content-type': 'application/json', 'x-balancer': 'no backend' });
        res.end(JSON.stringify({ error: 'bad_gateway' }));
      })();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  balancer.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    agent.destroy();
  };
  return balancer;
}

/** What the database holds of what the clients were told. */
export async function accountFor(cluster: Cluster, refreshTokens: Array<{ token: string; chain: number }>) {
  // Refresh tokens are stored under SHA-256 of their value, base64url (adapters/src/credential-ids.ts).
  const ids = refreshTokens.map(({ token }) => createHash('sha256').update(token, 'utf8').digest('base64url'));
  const { rows: tokens } = await cluster.inspect.query<{ id: string; grant_id: string | null }>(
    `select id, grant_id from oidc_models where model = 'RefreshToken' and id = any($1)`,
    [ids],
  );
  const stored = new Set(tokens.map((row) => row.id));
  /** The chains (sign-ins) with an answered refresh token that the database does not hold. */
  const chainsMissingTokens = [...new Set(refreshTokens.filter((_, index) => !stored.has(ids[index]!)).map(({ chain }) => chain))];
  const grantIds = [...new Set(tokens.map((row) => row.grant_id).filter((id): id is string => id !== null))];
  const { rows: grants } = await cluster.inspect.query(`select id from oidc_models where model = 'Grant' and id = any($1)`, [grantIds]);
  const { rows: audit } = await cluster.inspect.query<{ event_type: string; grant_type: string | null; count: string }>(
    `select event_type, details->>'grant_type' as grant_type, count(*) from audit_events group by 1, 2`,
  );
  const events = (type: string, grantType?: string) =>
    audit.filter((row) => row.event_type === type && (grantType === undefined || row.grant_type === grantType)).reduce((sum, row) => sum + Number(row.count), 0);
  return {
    refreshTokensAnswered: ids.length,
    refreshTokensStored: tokens.length,
    chainsMissingTokens,
    grantsReferenced: grantIds.length,
    grantsStored: grants.length,
    audit: {
      client_credentials: events('token.issued', 'client_credentials'),
      code: events('token.issued', 'authorization_code'),
      // A refresh answered again within the grace period (a client's retry) is audited as a replay.
      refresh: events('token.refreshed') + events('token.refresh_replayed'),
      login: events('login.success'),
    },
  };
}

/**
 * Audit events a provider could not write and logged instead ("audit event not recorded", see
 * docs/audit.md, "When a write fails"), counted as accountFor counts the rows.
 */
export function auditEventsLoggedInstead(output: string) {
  const counts = { client_credentials: 0, code: 0, refresh: 0, login: 0 };
  for (const line of output.split('\n')) {
    if (!line.includes('"audit event not recorded"')) continue;
    const { audit } = JSON.parse(line) as { audit?: { type?: string; details?: { grant_type?: string } } };
    if (audit?.type === 'token.issued' && audit.details?.grant_type === 'client_credentials') counts.client_credentials += 1;
    if (audit?.type === 'token.issued' && audit.details?.grant_type === 'authorization_code') counts.code += 1;
    if (audit?.type === 'token.refreshed' || audit?.type === 'token.refresh_replayed') counts.refresh += 1;
    if (audit?.type === 'login.success') counts.login += 1;
  }
  return counts;
}
