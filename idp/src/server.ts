import cluster from 'node:cluster';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { AlreadyConsumedError, clientCacheOf, CLIENT_CHANGES_CHANNEL, createStorageAdapter, sweepExpired, type Database, type NoticedCache } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import type { Aead, ColumnCipher, KeyEvent, Keystore } from '@jobswipe/keystore';
import type { Redis } from 'ioredis';
import type Provider from 'oidc-provider';
import type { JWKS } from 'oidc-provider';
import type { JWK } from 'jose';
import type { DestinationStream } from 'pino';
import { ADMIN_SOCKET_NAME, listenForCommands } from './admin-socket.ts';
import { createApp } from './app.ts';
import { keyAuditEvent } from './audit/events.ts';
import type { RecordEvent } from './audit/record-event.ts';
import { createAuditLog, type AuditLog } from './audit/log.ts';
import { auditProviderEvents } from './audit/provider-events.ts';
import { startSealing, type SealingOptions } from './audit/sealer.ts';
import { createCliContext } from './cli/context.ts';
import { runCommand } from './cli/run.ts';
import { registeredRedirectOrigins } from './clients/origins.ts';
import { createClientRegistry } from './clients/registry.ts';
import { serverCipher } from './clients/secrets.ts';
import { createClientValidator, createLibraries, createQueries, type Libraries, type Queries } from './composition.ts';
import { clientIpResolver, type ClientIp } from './http/client-ip.ts';
import { createAccessTokenVerifier } from './http/bearer-token.ts';
import { requestIdOf, requestScope } from './http/request-scope.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMailer } from './mail/transport.ts';
import { createProvider } from './provider/configuration.ts';
import { LIFETIMES } from './provider/lifetimes.ts';
import { createRefreshReplay } from './provider/refresh-replay.ts';
import { revokeGrant } from './sessions/revoke-grant.ts';
import { acceptedScopes } from './provider/scopes.ts';
import { connectRedis, redisReady } from './redis.ts';
import { developmentCookieKeys } from './secrets.ts';
import { createLimits } from './security/limits.ts';
import { DatabaseCounters } from './security/database-counters.ts';
import { createLogoutNotifier, deliveryOptionsFrom } from './sessions/delivery.ts';
import { accountCacheOf, USER_CHANGES_CHANNEL } from './users/queries.ts';
import { createLogoutTokenSigner, currentKeyOf } from './sessions/logout-tokens.ts';
import { trackSessions } from './sessions/tracking.ts';
import { loadKek, openKeystore } from './signing-keys.ts';
import { openStore, type Tables } from './store.ts';
import { openDataDirWarning, prepareDataDir } from './data-dir.ts';
import { previousPeriodOf } from './plans/period.ts';
import { answerMetricsRequests } from './metrics/cluster.ts';
import { watchExpiries } from './metrics/expiry-warnings.ts';
import { labelProviderRoutes } from './metrics/http-requests.ts';
import { listenForScrapes } from './metrics/listener.ts';
import { createMetrics, type Metrics } from './metrics/registry.ts';
import { storeGauges, type StoreProbes } from './metrics/store-gauges.ts';

export interface RunningServer {
  /** http://host:port of the first listener. */
  url: string;
  port: number;
  log: Logger;
  config: Config;
  readonly provider: Provider;
  database: Database<Tables>;
  /** The server's queries and libraries: what the pages use, for tests and tools in this process. */
  queries: Queries;
  libraries: Libraries;
  /** The audit log: its sealLag() is what the metrics export as jobswipe_audit_seal_lag_seconds. */
  audit: AuditLog;
  /** This process's metrics (docs/monitoring.md). */
  metrics: Metrics;
  /** Where GET /metrics answers (METRICS_HOST:METRICS_PORT); undefined in a WORKERS=N worker, whose primary serves it. */
  metricsUrl: string | undefined;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), then closes the store. */
  close(): Promise<void>;
}

export interface StartOptions {
  logDestination?: DestinationStream;
  /** How often the audit sealer runs and the chain head is logged (tests shorten them). */
  audit?: SealingOptions;
  /** The clock usage periods are read from (tests move it across a period's end). */
  now?: () => Date;
  /** How often the signing key and client secrets are checked for a warning in the log (tests shorten it). */
  expiryCheckMs?: number;
}

/** Undoes what a start-up step did; run in reverse order of the steps. */
type Cleanup = () => Promise<void> | void;

const PROVIDER_ERROR_EVENTS = [
  'authorization.error',
  'backchannel.error',
  'code_verification.error',
  'device_authorization.error',
  'device_resume.error',
  'discovery.error',
  'end_session.error',
  'grant.error',
  'introspection.error',
  'jwks.error',
  'pushed_authorization_request.error',
  'registration_create.error',
  'revocation.error',
  'userinfo.error',
] as const;

interface Stores {
  database: Database<Tables>;
  redis: Redis | undefined;
  audit: AuditLog;
  keystore: Keystore;
  /** What opening the keystore did (a first key, sealed keys): recorded once the event recorder exists. */
  openedKeys: KeyEvent[];
  adapter: ReturnType<typeof createStorageAdapter>;
  secrets: ReturnType<typeof serverCipher>;
  /** Seals a refresh's kept answer for its grace period (synchronous: on every refresh). */
  refreshAnswers: Aead;
  /** The column cipher itself: opens the answers the earlier release kept as JWEs (refresh-replay.ts). */
  columnCipher: ColumnCipher;
}

/** Makes `cache` listen on `channel`: it keeps rows only while their change notices arrive. Returns the unlisten. */
async function keepWhileNoticed(database: Database<Tables>, channel: string, cache: NoticedCache<unknown>, rows: 'client' | 'user', log: Logger): Promise<() => Promise<void>> {
  const kind = rows === 'client' ? 'clients' : 'accounts';
  return database
    .listen(channel, {
      message: (id) => cache.changed(id),
      state: (listening) => {
        cache.listening(listening);
        if (!listening) log.warn(`${rows} change notices interrupted: ${kind} are read from the database until they resume`);
      },
    })
    .catch((error: unknown) => {
      log.warn({ err: error }, `cannot listen for ${rows} changes: ${kind} are read from the database on every request`);
      return async () => {};
    });
}

/** The database (migrated), Redis, the audit log and the keystore (opened, keys sealed). */
async function openStores(config: Config, log: Logger, metrics: Metrics, cleanups: Cleanup[]): Promise<Stores> {
  const database = await openStore(
    config,
    (error) => log.error({ err: error }, 'database pool error'),
    (seconds) => metrics.storeQueryDuration.observe({ store: 'database' }, seconds),
  );
  cleanups.push(() => database.close());
  const { db } = database;
  // A failed audit write is logged with its event and does not stop what it records (docs/audit.md).
  const audit = createAuditLog(db, (error, event) => log.error({ err: error, audit: event }, 'audit event not recorded'));
  const { kek, generated } = await loadKek(config);
  if (generated) {
    log.warn({ path: generated }, 'using a generated key-encryption key for the signing keys; configure KEYSTORE_KEK or KEYSTORE_KEK_FILE outside development');
  }
  const keystore = openKeystore(db, config, kek);
  const openedKeys = await keystore.open();
  const redis = config.redis ? await connectRedis(config.redis) : undefined;
  if (redis) cleanups.push(() => redis.quit().then(() => undefined, () => redis.disconnect()));
  const columnCipher = await keystore.columnCipher();
  const secrets = serverCipher(columnCipher, (error, context) => log.error({ err: error }, `cannot open the sealed ${context}`));
  const sealed = await createClientRegistry(db, async () => {}, secrets).sealStored();
  if (sealed > 0) log.info({ count: sealed }, 'sealed client secrets that were stored in the clear');
  // Clients, and the accounts the provider reads on token, userinfo and introspection requests, are
  // kept between requests while every change to them is announced to this process.
  cleanups.push(await keepWhileNoticed(database, CLIENT_CHANGES_CHANNEL, clientCacheOf(db), 'client', log));
  cleanups.push(await keepWhileNoticed(database, USER_CHANGES_CHANNEL, accountCacheOf(db), 'user', log));
  const adapter = createStorageAdapter({
    db,
    redis: redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined,
    secrets,
    onRedisOperation: (seconds) => metrics.storeQueryDuration.observe({ store: 'redis' }, seconds),
  });
  return { database, redis, audit, keystore, openedKeys, adapter, secrets, refreshAnswers: columnCipher.shortLived('refresh answer'), columnCipher };
}

/** A provider instance over the given keys, with our listeners on its events. */
function providerBuilder(config: Config, stores: Stores, queries: Queries, deps: { cookieKeys: string[]; log: Logger; clientIp: ClientIp; recordEvent: RecordEvent; sendLogout: Parameters<typeof createProvider>[0]['sendLogout']; entitlementsOf: Parameters<typeof createProvider>[0]['entitlementsOf'] }) {
  const { adapter } = stores;
  const { log } = deps;
  // One per process, whichever provider instance (signing keys) serves a request: redemptions under way are shared.
  const refreshReplay =
    config.refreshTokenReuseGraceSeconds > 0
      ? createRefreshReplay({
          graceSeconds: config.refreshTokenReuseGraceSeconds,
          adapter,
          secrets: stores.refreshAnswers,
          openEarlier: (sealed, context) => stores.columnCipher.open(sealed, context),
          onError: (error, message) => log.error({ err: error }, message),
        })
      : undefined;
  return async (jwks: JWKS): Promise<Provider> => {
    const built = createProvider({
      issuer: config.issuer,
      jwks,
      cookieKeys: deps.cookieKeys,
      adapter,
      scopes: await acceptedScopes(stores.database.db, config.api.scopes),
      users: queries.users,
      api: config.api,
      sendLogout: deps.sendLogout,
      refreshReplay,
      entitlementsOf: deps.entitlementsOf,
    });
    built.use(labelProviderRoutes(built));
    trackSessions(built, queries.sessionRegistry, LIFETIMES.session, log, deps.clientIp);
    auditProviderEvents(built, deps.recordEvent, deps.clientIp);
    built.on('server_error', (ctx, error) => {
      log.error({ requestId: requestIdOf(ctx.req), err: error }, 'provider error');
    });
    for (const event of PROVIDER_ERROR_EVENTS) {
      // The provider's typings list only some of its events; it emits all of these.
      (built as unknown as NodeJS.EventEmitter).on(event, (ctx: { req: IncomingMessage }, error: { error?: string; error_description?: string }) => {
        log.info({ requestId: requestIdOf(ctx.req), event, error: error.error, description: error.error_description }, 'request refused');
      });
    }
    // Losing a race to redeem a code or refresh token is a reuse (past a refresh token's grace period,
    // see refresh-replay.ts): revoke the grant, as for a sequential one, before the refusal goes out.
    built.on('grant.error', (ctx, error) => {
      if (error instanceof AlreadyConsumedError && error.grantId) {
        const revoking = revokeGrant(adapter, error.grantId).catch((cause: unknown) => log.error({ err: cause }, 'grant revocation failed'));
        (requestScope(ctx.req).pendingWrites ??= []).push(revoking);
      }
    });
    built.use(async (ctx, next) => {
      await next();
      await Promise.all(requestScope(ctx.req).pendingWrites ?? []);
    });
    return built;
  };
}

/**
 * oidc-provider takes its keys as static configuration: when the published keys change, a new
 * provider instance replaces the old one behind the Koa mount; requests under way finish on the old.
 */
async function startKeyRefresh(config: Config, stores: Stores, log: Logger, recordEvent: RecordEvent, build: (jwks: JWKS) => Promise<Provider>, cleanups: Cleanup[]) {
  const { keystore } = stores;
  let signing = await keystore.signingKeys();
  let provider = await build(signing.jwks);
  const refreshKeys = async () => {
    try {
      for (const event of await keystore.rotateIfDue()) await recordEvent(keyAuditEvent(event));
    } catch (error) {
      // E.g. the KEK was changed by `keys rewrap`: keep picking up the keys other processes publish.
      log.error({ err: error }, 'scheduled key rotation failed');
    }
    const latest = await keystore.signingKeys();
    if (latest.version === signing.version) return;
    provider = await build(latest.jwks);
    signing = latest;
    log.info({ keys: latest.version }, 'signing keys reloaded');
  };
  let refreshing: Promise<void> | undefined;
  const keyTimer = setInterval(() => {
    // One refresh at a time: a slow one must not finish after, and undo, a newer one.
    refreshing ??= refreshKeys()
      .catch((error: unknown) => log.error({ err: error }, 'signing key refresh failed; still serving the previous keys'))
      .finally(() => {
        refreshing = undefined;
      });
  }, config.keystore.pollSeconds * 1000);
  keyTimer.unref();
  cleanups.push(async () => {
    clearInterval(keyTimer);
    await refreshing;
  });
  return { provider: () => provider, jwks: () => signing.jwks };
}

/** The embedded store belongs to this process: CLI commands reach it through the admin socket. */
async function serveAdminSocket(config: Config, database: Database<Tables>, libraries: Libraries, queries: Queries, log: Logger, cleanups: Cleanup[]) {
  if (database.kind !== 'embedded') return;
  const socketPath = join(resolve(config.dataDir), ADMIN_SOCKET_NAME);
  try {
    const stopCommands = await listenForCommands(
      socketPath,
      (argv, io) => {
        log.info({ event: 'admin.command', command: argv.slice(0, 2).join(' ') }, 'command from the CLI');
        return runCommand(argv, io, (given) => createCliContext(given, io, { database, libraries, queries }), config);
      },
      (error) => log.error({ err: error }, 'CLI command failed'),
    );
    cleanups.push(stopCommands);
  } catch (error) {
    log.warn({ err: error, socketPath }, 'CLI commands cannot reach this server (admin socket unavailable)');
  }
}

function listenAddresses(host: string): string[] {
  return host === 'localhost' ? ['127.0.0.1', '::1'] : [host];
}

async function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function closeGracefully(servers: Server[], graceMs: number): Promise<void> {
  const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  // Keep-alive sockets that go idle after close() was called are closed as soon as they do.
  const idleSweep = setInterval(() => servers.forEach((server) => server.closeIdleConnections()), 50);
  const deadline = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
  await Promise.race([closed, deadline]);
  clearInterval(idleSweep);
  servers.forEach((server) => server.closeAllConnections());
  await closed;
}

/** One HTTP listener per address of HOST; returns the port (the first listener's, when PORT is 0). */
async function listen(config: Config, handler: Parameters<typeof createServer>[1], cleanups: Cleanup[]): Promise<number> {
  const servers: Server[] = [];
  // Closed before the later cleanups run: requests under way get the grace period.
  cleanups.push(() => closeGracefully(servers, config.shutdownGraceSeconds * 1000));
  let port = config.port;
  for (const host of listenAddresses(config.host)) {
    const server = createServer({ keepAliveTimeout: 5_000, requestTimeout: 30_000 }, handler);
    try {
      port = await listenOn(server, port, host);
      servers.push(server);
    } catch (error) {
      // A machine without IPv6 still serves localhost on 127.0.0.1.
      if (host === '::1' && ['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes((error as NodeJS.ErrnoException).code ?? '')) continue;
      throw error;
    }
  }
  return port;
}

/**
 * The metrics of this process: the store gauges read before each scrape, served on METRICS_PORT (or,
 * in a WORKERS=N worker, handed to the primary, which serves the whole group), and warnings in the log
 * when the signing key rotation is overdue or a client secret nears its expiry.
 */
async function exposeMetrics(config: Config, stores: Stores, queries: Queries, metrics: Metrics, log: Logger, options: StartOptions, cleanups: Cleanup[]): Promise<string | undefined> {
  const { redis } = stores;
  const probes: StoreProbes = {
    databaseUp: () => stores.database.ping(),
    redisUp: redis ? () => redisReady(redis) : undefined,
    activeSessions: () => queries.expiry.activeSessionCount(),
    refreshTokensExpiring: (seconds) => queries.expiry.refreshTokenCount(seconds),
    clientSecretsExpiring: (seconds) => queries.expiry.clientSecretsExpiring(seconds),
    auditSealLag: () => stores.audit.sealLag(),
    signingKeys: () => stores.keystore.list(),
    rotationSeconds: config.keystore.rotationSeconds,
  };
  const watch = watchExpiries(probes, log, {
    // A due rotation is applied within a poll by any process: three polls and a minute late, none is applying it.
    overdueAfterSeconds: 3 * config.keystore.pollSeconds + 60,
    ...(options.expiryCheckMs ? { intervalMs: options.expiryCheckMs } : {}),
  });
  cleanups.push(() => watch.stop());
  void watch.check();
  const refresh = storeGauges(metrics, probes);
  if (cluster.isWorker) {
    cleanups.push(answerMetricsRequests(metrics.registry, refresh));
    return undefined;
  }
  const listener = await listenForScrapes(config.metrics, async () => {
    await refresh();
    return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
  }, log);
  cleanups.push(() => listener.close());
  return listener.url;
}

/** Removes expired rows (provider models, sessions, limit counters, mailed links) every SWEEP_INTERVAL_SECONDS. */
function startSweeper(config: Config, stores: Stores, queries: Queries, log: Logger, cleanups: Cleanup[]): void {
  const { db } = stores.database;
  const sweeper = setInterval(() => {
    Promise.all([
      sweepExpired(db),
      queries.sessionRegistry.sweep(),
      stores.redis ? 0 : DatabaseCounters.sweep(db),
      queries.accountTokens.sweep(),
      // Usage events are kept for this period and the one before; their totals stay in the counters.
      queries.plans.sweepEvents(previousPeriodOf(new Date()).start),
    ])
      .then(
        ([removed, sessions, limits, accountTokens, usageEvents]) =>
          removed + sessions + limits + accountTokens + usageEvents > 0 && log.info({ removed, sessions, limits, accountTokens, usageEvents }, 'expired rows swept'),
      )
      .catch((error: unknown) => log.warn({ err: error }, 'sweep failed'));
  }, config.sweepIntervalSeconds * 1000);
  sweeper.unref();
  cleanups.push(() => clearInterval(sweeper));
}

/**
 * The graph over the open stores: queries, then the libraries the pages use and a second set for CLI
 * commands run through the admin socket (those wait for logout deliveries, to report them).
 */
function buildGraph(config: Config, stores: Stores, log: Logger, metrics: Metrics, serving: () => Serving, now: (() => Date) | undefined) {
  const { db } = stores.database;
  // Logout tokens are signed with whichever key signs now (kept current by the key refresh).
  const logoutNotifier = createLogoutNotifier(
    createLogoutTokenSigner(config.issuer, async () => currentKeyOf(serving().jwks())),
    deliveryOptionsFrom(config),
    log,
    (result) => metrics.backchannelDeliveries.inc({ outcome: result.delivered ? 'delivered' : 'failed' }),
  );
  const queries = createQueries(db);
  const shared = {
    config,
    db,
    queries,
    adapter: stores.adapter,
    secrets: stores.secrets,
    validateClient: createClientValidator(config, db, queries.users),
    // Links are credentials: logged only in development, when mails go to files.
    mailer: createMailer({ smtpUrl: config.mail.smtpUrl, from: config.mail.from, dataDir: config.dataDir, logLinks: config.env === 'development' }, log),
    audit: stores.audit,
    keystore: async () => stores.keystore,
    log,
    now,
    metrics,
  };
  return {
    logoutNotifier,
    queries,
    mailer: shared.mailer,
    libraries: createLibraries({ ...shared, sendLogout: logoutNotifier.notify }),
    commandLibraries: createLibraries({ ...shared, sendLogout: logoutNotifier.deliver }),
  };
}

type Graph = ReturnType<typeof buildGraph>;
type Serving = Awaited<ReturnType<typeof startKeyRefresh>>;

/** The Koa application: our pages and middlewares in front of the provider serving now. */
function buildApp(config: Config, stores: Stores, graph: Graph, deps: { cookieKeys: string[]; clientIp: ClientIp; log: Logger; metrics: Metrics; provider: () => Provider; jwks: () => JWKS }) {
  const { database, redis } = stores;
  const { db } = database;
  const { queries, libraries } = graph;
  // Every limit counts in Redis when there is one (shared by every process), else in the database.
  const limits = createLimits(
    { db, redis: redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined },
    { tokenRequestsPerMinute: config.tokenRateLimitPerMinute, onRateLimited: (limit) => deps.metrics.rateLimited.inc({ limit }) },
  );
  return createApp({
    issuer: config.issuer,
    cookieKeys: deps.cookieKeys,
    log: deps.log,
    metrics: deps.metrics,
    provider: deps.provider,
    jwksCacheSeconds: config.keystore.jwksCacheSeconds,
    production: config.production,
    ready: async () => {
      const [databaseUp, redisUp] = await Promise.all([database.ping(), redis ? redisReady(redis) : true]);
      return { database: databaseUp, redis: redis ? redisUp : undefined };
    },
    users: queries.users,
    hasher: libraries.hasher,
    registry: queries.sessionRegistry,
    sessions: libraries.sessions,
    loginLimits: limits.login,
    deviceCodeLimits: limits.deviceCodes,
    clientIp: deps.clientIp,
    trustProxy: config.trustProxy,
    tokenLimits: limits.clientAuth,
    isRegisteredOrigin: registeredRedirectOrigins(db),
    libraries,
    verifyAccessToken: createAccessTokenVerifier({ issuer: config.issuer, audience: config.api.resource, keys: () => deps.jwks() as { keys: JWK[] } }),
    signup: { mode: config.signup, unverifiedSignIn: config.unverifiedSignIn, limits: { signup: limits.signup, resend: limits.verificationResend } },
    mailer: graph.mailer,
    accountTokens: queries.accountTokens,
    resetLimits: { ip: limits.resetRequests, address: limits.resetMails },
    emailChangeLimit: limits.emailChanges,
  });
}

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const log = createLogger(config.logLevel, options.logDestination);
  const dataDir = await prepareDataDir(config);
  if (dataDir.openToOthers) log.warn({ path: dataDir.path }, openDataDirWarning(dataDir.path));
  const cleanups: Cleanup[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  const metrics = createMetrics();
  try {
    const stores = await openStores(config, log, metrics, cleanups);
    // Chains the audit events off the request path; stopped after the listeners (it seals their last events).
    const sealing = startSealing(stores.audit, log, options.audit);
    cleanups.push(() => sealing.stop());
    const cookieKeys = config.cookieKeys ?? (await developmentCookieKeys(config.dataDir));
    const clientIp = clientIpResolver(config.trustProxy);
    let serving: Serving | undefined;
    const graph = buildGraph(config, stores, log, metrics, () => serving!, options.now);
    const { queries, libraries, logoutNotifier } = graph;
    const { recordEvent } = libraries;
    if (!(await queries.plans.find(config.defaultPlan))) {
      log.error({ plan: config.defaultPlan }, 'DEFAULT_PLAN names a plan that does not exist: users without a subscription cannot record usage until it is imported (docs/usage.md)');
    }
    for (const event of stores.openedKeys) await recordEvent(keyAuditEvent(event));
    const build = providerBuilder(config, stores, queries, { cookieKeys, log, clientIp, recordEvent, sendLogout: logoutNotifier.notify, entitlementsOf: libraries.plans.entitlementsOf });
    serving = await startKeyRefresh(config, stores, log, recordEvent, build, cleanups);
    const { provider, jwks } = serving;
    const app = buildApp(config, stores, graph, { cookieKeys, clientIp, log, metrics, provider, jwks });
    await serveAdminSocket(config, stores.database, graph.commandLibraries, queries, log, cleanups);
    // Runs after the listeners have closed: logout tokens already under way get the grace period too.
    cleanups.push(() => logoutNotifier.drain(config.shutdownGraceSeconds * 1000));
    // Before the public port: a metrics port that cannot be listened on stops the start before any traffic.
    const metricsUrl = await exposeMetrics(config, stores, queries, metrics, log, options, cleanups);
    const port = await listen(config, app.callback(), cleanups);
    startSweeper(config, stores, queries, log, cleanups);

    const first = listenAddresses(config.host)[0] ?? '127.0.0.1';
    const url = `http://${first.includes(':') ? `[${first}]` : first}:${port}`;
    log.info({ issuer: config.issuer, url, metrics: metricsUrl, store: stores.database.kind, redis: Boolean(stores.redis) }, 'JobSwipe Identity listening');

    let closing: Promise<void> | undefined;
    return {
      url,
      port,
      log,
      config,
      get provider() {
        return provider();
      },
      database: stores.database,
      queries,
      libraries,
      audit: stores.audit,
      metrics,
      metricsUrl,
      close() {
        closing ??= stop().then(() => log.info('stopped'));
        return closing;
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
