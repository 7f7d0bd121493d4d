import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AlreadyConsumedError, createStorageAdapter, sweepExpired, type Database } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import type Provider from 'oidc-provider';
import type { JWKS } from 'oidc-provider';
import type { DestinationStream } from 'pino';
import { join, resolve } from 'node:path';
import { ADMIN_SOCKET_NAME, listenForCommands } from './admin-socket.ts';
import { createApp } from './app.ts';
import { keyAuditEvent } from './audit/events.ts';
import { createAuditLog } from './audit/log.ts';
import { auditProviderEvents } from './audit/provider-events.ts';
import { createCliContext } from './cli/context.ts';
import { runCommand } from './cli/run.ts';
import { requestIdOf } from './http/request-scope.ts';
import { createLogger, type Logger } from './logger.ts';
import { createProvider } from './provider/configuration.ts';
import { LIFETIMES } from './provider/lifetimes.ts';
import { createLogoutNotifier, deliveryOptionsFrom } from './sessions/delivery.ts';
import { createLogoutTokenSigner, currentKeyOf } from './sessions/logout-tokens.ts';
import { createSessionRegistry } from './sessions/registry.ts';
import { createSessionService } from './sessions/service.ts';
import { createPersonalData } from './account/personal-data.ts';
import { trackSessions } from './sessions/tracking.ts';
import { clientIpResolver } from './http/client-ip.ts';
import { createLimits } from './security/limits.ts';
import { registeredRedirectOrigins } from './clients/origins.ts';
import { DatabaseCounters } from './security/database-counters.ts';
import { revokeGrant } from './sessions/revoke-grant.ts';
import { connectRedis, redisReady } from './redis.ts';
import { acceptedScopes } from './provider/scopes.ts';
import { developmentCookieKeys } from './secrets.ts';
import { loadKek, openKeystore } from './signing-keys.ts';
import { createClientRegistry } from './clients/registry.ts';
import { serverCipher } from './clients/secrets.ts';
import { openStore, type Tables } from './store.ts';
import { createPasswordHasher } from './users/passwords.ts';
import { createUserQueries } from './users/queries.ts';
import { createAccountTokens } from './users/account-tokens.ts';
import { createMailer } from './mail/transport.ts';
import { openDataDirWarning, prepareDataDir } from './data-dir.ts';

export interface RunningServer {
  /** http://host:port of the first listener. */
  url: string;
  port: number;
  log: Logger;
  config: Config;
  readonly provider: Provider;
  database: Database<Tables>;
  /** Stops accepting, lets in-flight requests finish (up to the grace period), then closes the store. */
  close(): Promise<void>;
}

export interface StartOptions {
  logDestination?: DestinationStream;
}

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

function listenAddresses(host: string): string[] {
  return host === 'localhost' ? ['127.0.0.1', '::1'] : [host];
}

async function listen(server: Server, port: number, host: string): Promise<number> {
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

export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const log = createLogger(config.logLevel, options.logDestination);
  const dataDir = await prepareDataDir(config);
  if (dataDir.openToOthers) log.warn({ path: dataDir.path }, openDataDirWarning(dataDir.path));
  const database = await openStore(config, (error) => log.error({ err: error }, 'database pool error'));
  const cleanups: Array<() => Promise<void> | void> = [() => database.close()];
  try {
    const { db } = database;
    // A failed audit write is logged with its event and does not stop what it records (docs/audit.md).
    const audit = createAuditLog(db, (error, event) => log.error({ err: error, audit: event }, 'audit event not recorded'));
    const { kek, generated } = await loadKek(config);
    if (generated) {
      log.warn({ path: generated }, 'using a generated key-encryption key for the signing keys; configure KEYSTORE_KEK or KEYSTORE_KEK_FILE outside development');
    }
    const keystore = openKeystore(db, config, kek);
    for (const event of await keystore.open()) {
      log.info(event, event.event);
      await audit.record(keyAuditEvent(event));
    }
    const cookieKeys = config.cookieKeys ?? (await developmentCookieKeys(config.dataDir));
    const redis = config.redis ? await connectRedis(config.redis) : undefined;
    if (redis) cleanups.unshift(() => redis.quit().then(() => undefined, () => redis.disconnect()));
    const secrets = serverCipher(await keystore.columnCipher(), (error, context) => log.error({ err: error }, `cannot open the sealed ${context}`));
    const sealed = await createClientRegistry(db, async () => {}, secrets).sealStored();
    if (sealed > 0) log.info({ count: sealed }, 'sealed client secrets that were stored in the clear');
    const adapter = createStorageAdapter({ db, redis: redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined, secrets });
    const users = createUserQueries(db);
    const hasher = createPasswordHasher(config.bcryptCost);
    const registry = createSessionRegistry(db);
    const clientIp = clientIpResolver(config.trustProxy);
    // Every limit counts in Redis when there is one (shared by every process), else in the database.
    const limits = createLimits(
      { db, redis: redis && config.redis ? { client: redis, prefix: config.redis.keyPrefix } : undefined },
      { tokenRequestsPerMinute: config.tokenRateLimitPerMinute },
    );
    let signing: Awaited<ReturnType<typeof keystore.signingKeys>>;
    // Logout tokens are signed with whichever key signs now (`signing` is kept current below).
    const signLogoutToken = createLogoutTokenSigner(config.issuer, async () => currentKeyOf(signing.jwks));
    const logoutNotifier = createLogoutNotifier(
      signLogoutToken,
      deliveryOptionsFrom(config),
      log,
    );
    const sessionService = createSessionService({ db, adapter, registry, sendLogout: logoutNotifier.notify });
    // CLI commands run through the admin socket wait for the deliveries, to report them.
    const sessionServiceForCommands = createSessionService({ db, adapter, registry, sendLogout: logoutNotifier.deliver });

    const buildProvider = async (jwks: JWKS): Promise<Provider> => {
      const built = createProvider({
        issuer: config.issuer,
        jwks,
        cookieKeys,
        adapter,
        scopes: await acceptedScopes(db, config.api.scopes),
        users,
        api: config.api,
        sendLogout: logoutNotifier.notify,
      });
      trackSessions(built, registry, LIFETIMES.session, log, clientIp);
      auditProviderEvents(built, audit, clientIp);
      built.on('server_error', (ctx, error) => {
        log.error({ requestId: requestIdOf(ctx.req), err: error }, 'provider error');
      });
      for (const event of PROVIDER_ERROR_EVENTS) {
        // The provider's typings list only some of its events; it emits all of these.
        (built as unknown as NodeJS.EventEmitter).on(event, (ctx: { req: IncomingMessage }, error: { error?: string; error_description?: string }) => {
          log.info({ requestId: requestIdOf(ctx.req), event, error: error.error, description: error.error_description }, 'request refused');
        });
      }
      // Losing a race to redeem a code or refresh token is a reuse: revoke the grant, as for a sequential one.
      built.on('grant.error', (_ctx, error) => {
        if (error instanceof AlreadyConsumedError && error.grantId) {
          revokeGrant(adapter, error.grantId).catch((cause: unknown) => log.error({ err: cause }, 'grant revocation failed'));
        }
      });
      return built;
    };

    // oidc-provider takes its keys as static configuration: when the published keys change, a new
    // provider instance replaces the old one behind the Koa mount; requests under way finish on the old.
    signing = await keystore.signingKeys();
    let provider = await buildProvider(signing.jwks);
    const refreshKeys = async () => {
      try {
        for (const event of await keystore.rotateIfDue()) {
          log.info(event, event.event);
          await audit.record(keyAuditEvent(event));
        }
      } catch (error) {
        // E.g. the KEK was changed by `keys rewrap`: keep picking up the keys other processes publish.
        log.error({ err: error }, 'scheduled key rotation failed');
      }
      const latest = await keystore.signingKeys();
      if (latest.version === signing.version) return;
      provider = await buildProvider(latest.jwks);
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
    cleanups.unshift(async () => {
      clearInterval(keyTimer);
      await refreshing;
    });

    const app = createApp({
      issuer: config.issuer,
      cookieKeys,
      log,
      provider: () => provider,
      jwksCacheSeconds: config.keystore.jwksCacheSeconds,
      production: config.production,
      ready: async () => {
        const [databaseUp, redisUp] = await Promise.all([database.ping(), redis ? redisReady(redis) : true]);
        return { database: databaseUp, redis: redis ? redisUp : undefined };
      },
      users,
      hasher,
      registry,
      sessions: sessionService,
      loginLimits: limits.login,
      deviceCodeLimits: limits.deviceCodes,
      clientIp,
      trustProxy: config.trustProxy,
      tokenLimits: limits.clientAuth,
      isRegisteredOrigin: registeredRedirectOrigins(db),
      audit,
      personalData: createPersonalData(db),
      signup: { mode: config.signup, unverifiedSignIn: config.unverifiedSignIn, limits: { signup: limits.signup, resend: limits.verificationResend } },
      // Links are credentials: logged only in development, when mails go to files.
      mailer: createMailer({ smtpUrl: config.mail.smtpUrl, from: config.mail.from, dataDir: config.dataDir, logLinks: config.env === 'development' }, log),
      accountTokens: createAccountTokens(db),
      resetLimits: { ip: limits.resetRequests, address: limits.resetMails },
      emailChangeLimit: limits.emailChanges,
    });

    if (database.kind === 'embedded') {
      const socketPath = join(resolve(config.dataDir), ADMIN_SOCKET_NAME);
      try {
        const stopCommands = await listenForCommands(
          socketPath,
          (argv, io) => {
            log.info({ event: 'admin.command', command: argv.slice(0, 2).join(' ') }, 'command from the CLI');
            return runCommand(argv, io, (given) => createCliContext(given, io, { database, sessions: sessionServiceForCommands }), config);
          },
          (error) => log.error({ err: error }, 'CLI command failed'),
        );
        cleanups.unshift(stopCommands);
      } catch (error) {
        log.warn({ err: error, socketPath }, 'CLI commands cannot reach this server (admin socket unavailable)');
      }
    }

    const handler = app.callback();
    const servers: Server[] = [];
    let port = config.port;
    for (const host of listenAddresses(config.host)) {
      const server = createServer({ keepAliveTimeout: 5_000, requestTimeout: 30_000 }, handler);
      try {
        port = await listen(server, port, host);
        servers.push(server);
      } catch (error) {
        // A machine without IPv6 still serves localhost on 127.0.0.1.
        if (host === '::1' && ['EADDRNOTAVAIL', 'EAFNOSUPPORT'].includes((error as NodeJS.ErrnoException).code ?? '')) continue;
        throw error;
      }
    }
    // Runs after the listeners have closed: logout tokens already under way get the grace period too.
    cleanups.unshift(() => logoutNotifier.drain(config.shutdownGraceSeconds * 1000));
    cleanups.unshift(() => closeGracefully(servers, config.shutdownGraceSeconds * 1000));

    const sweeper = setInterval(() => {
      Promise.all([sweepExpired(db), registry.sweep(), redis ? 0 : DatabaseCounters.sweep(db), createAccountTokens(db).sweep()])
        .then(
          ([removed, sessions, limits, accountTokens]) =>
            removed + sessions + limits + accountTokens > 0 && log.info({ removed, sessions, limits, accountTokens }, 'expired rows swept'),
        )
        .catch((error: unknown) => log.warn({ err: error }, 'sweep failed'));
    }, config.sweepIntervalSeconds * 1000);
    sweeper.unref();
    cleanups.unshift(() => clearInterval(sweeper));

    const first = listenAddresses(config.host)[0] ?? '127.0.0.1';
    const url = `http://${first.includes(':') ? `[${first}]` : first}:${port}`;
    log.info({ issuer: config.issuer, url, store: database.kind, redis: Boolean(redis) }, 'JobSwipe Identity listening');

    let closing: Promise<void> | undefined;
    return {
      url,
      port,
      log,
      config,
      get provider() {
        return provider;
      },
      database,
      close() {
        closing ??= (async () => {
          for (const cleanup of cleanups) await cleanup();
          log.info('stopped');
        })();
        return closing;
      },
    };
  } catch (error) {
    for (const cleanup of cleanups) await cleanup();
    throw error;
  }
}
