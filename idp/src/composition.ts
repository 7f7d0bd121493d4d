import { randomBytes } from 'node:crypto';
import { createOidcAdapter, type ValueCipher } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import { generateSigningKey, type Keystore } from '@jobswipe/keystore';
import type { Kysely } from 'kysely';
import type { Adapter } from 'oidc-provider';
import { createPersonalData } from './account/personal-data.ts';
import { createAccountSettings } from './account/settings.ts';
import type { AuditLog } from './audit/log.ts';
import { createEventRecorder } from './audit/record-event.ts';
import { createAuditSearch } from './audit/search.ts';
import { createClientAdministration } from './clients/administration.ts';
import { createClientRegistry, type Metadata, type ValidateClient } from './clients/registry.ts';
import { createKeyAdministration } from './keys/administration.ts';
import type { Logger } from './logger.ts';
import type { Mailer } from './mail/transport.ts';
import { createProvider } from './provider/configuration.ts';
import { acceptedScopes } from './provider/scopes.ts';
import { createPasswordReset } from './password-reset/reset.ts';
import { createPlanQueries } from './plans/queries.ts';
import { countAuditEvents } from './metrics/audit-counters.ts';
import type { Metrics } from './metrics/registry.ts';
import { createExpiryQueries } from './tokens/expiry-queries.ts';
import { createPlanService } from './plans/service.ts';
import { createDesktopDevices } from './plans/desktop-devices.ts';
import { createRegistration } from './signup/registration.ts';
import { createSessionRegistry } from './sessions/registry.ts';
import { createSessionService, type SessionServiceDependencies } from './sessions/service.ts';
import type { Tables } from './store.ts';
import { createAccountTokens } from './users/account-tokens.ts';
import { createAccounts } from './users/accounts.ts';
import { createUserAdministration } from './users/administration.ts';
import { createPasswordHasher } from './users/passwords.ts';
import { createUserQueries, type UserQueries } from './users/queries.ts';
import { createUpstreamQueries } from './upstreams/queries.ts';
import { createUpstreamService } from './upstreams/service.ts';
import { createMfaQueries } from './mfa/queries.ts';
import { createMfaService } from './mfa/service.ts';
import { createPasskeys } from './mfa/passkeys.ts';
import { CHALLENGE_LIFETIME_SECONDS } from './mfa/webauthn-challenge.ts';
import { spendOnce } from './provider/single-use.ts';
import { createTotp } from './mfa/totp.ts';

/*
 * The one place the object graph is built: queries over the database, libraries over the queries.
 * The server, the CLI and the tests all call these factories; nothing else wires them by hand.
 */

/** Everything that reads and writes rows, over one database (or one transaction). */
export function createQueries(db: Kysely<Tables>) {
  return {
    users: createUserQueries(db),
    accountTokens: createAccountTokens(db),
    sessionRegistry: createSessionRegistry(db),
    personalData: createPersonalData(db),
    plans: createPlanQueries(db),
    expiry: createExpiryQueries(db),
    auditEvents: createAuditSearch(db),
    upstreams: createUpstreamQueries(db),
    mfa: createMfaQueries(db),
  };
}

export type Queries = ReturnType<typeof createQueries>;

export interface LibraryDependencies {
  config: Config;
  db: Kysely<Tables>;
  queries: Queries;
  /** The provider's storage adapter (Postgres, with Redis for the hot models when configured). */
  adapter: new (name: string) => Adapter;
  /** Seals and opens client secrets. */
  secrets: ValueCipher;
  /** Checks client metadata the way the serving provider would. */
  validateClient: ValidateClient;
  /** Logout tokens: sent in the background (pages) or awaited (CLI commands, which report them). */
  sendLogout: SessionServiceDependencies['sendLogout'];
  mailer: Mailer;
  audit: AuditLog;
  /** The signing keystore, opened when first needed. */
  keystore: () => Promise<Keystore>;
  log: Logger;
  /** The clock usage periods are read from (tests set it); the system clock by default. */
  now?: (() => Date) | undefined;
  /** The server's metrics (the CLI keeps none): audit events and usage recordings are counted there. */
  metrics?: Metrics | undefined;
}

/** The business rules, each a factory over its dependencies; called by the pages and the CLI alike. */
export function createLibraries(deps: LibraryDependencies) {
  const { queries, mailer, log } = deps;
  const { issuer } = deps.config;
  const { metrics } = deps;
  const recordEvent = createEventRecorder(deps.audit, log, metrics && countAuditEvents(metrics));
  const hasher = createPasswordHasher(deps.config.bcryptCost);
  const sessions = createSessionService({ db: deps.db, adapter: deps.adapter, registry: queries.sessionRegistry, sendLogout: deps.sendLogout });
  const accounts = createAccounts(queries.users, hasher);
  const tokens = queries.accountTokens;
  const passwordReset = createPasswordReset({ issuer, users: queries.users, hasher, sessions, tokens, mailer, recordEvent, log });
  const clients = createClientRegistry(deps.db, deps.validateClient, deps.secrets);
  const registration = createRegistration({ issuer, users: queries.users, hasher, tokens, mailer, recordEvent, log });
  const totp = createTotp({ queries: queries.mfa, secrets: deps.secrets, issuerName: 'JobSwipe' });
  const spent = new deps.adapter('ReplayDetection');
  const passkeys = createPasskeys({
    queries: queries.mfa,
    issuer,
    rpName: 'JobSwipe',
    spendChallenge: (challenge) => spendOnce(spent, `webauthn:${challenge}`, CHALLENGE_LIFETIME_SECONDS),
  });
  const mfa = createMfaService({ queries: queries.mfa, totp, passkeys, recordEvent });
  const plans = createPlanService({
    queries: queries.plans,
    defaultPlan: deps.config.defaultPlan,
    recordEvent,
    now: deps.now ?? (() => new Date()),
    onRecorded: metrics && ((meter, quantity) => metrics.usageRecorded.inc({ meter }, quantity)),
  });
  return {
    recordEvent,
    hasher,
    sessions,
    accounts,
    clients,
    clientAdministration: createClientAdministration({ clients, adapter: deps.adapter, recordEvent }),
    keys: createKeyAdministration({ keystore: deps.keystore, recordEvent }),
    passwordReset,
    registration,
    accountSettings: createAccountSettings({ issuer, users: queries.users, hasher, sessions, tokens, personalData: queries.personalData, mailer, recordEvent, log }),
    users: createUserAdministration({ users: queries.users, accounts, sessions, passwordReset, registration, recordEvent }),
    plans,
    /** Audit events by time, type and user, for the admin API (reads only). */
    auditEvents: queries.auditEvents,
    totp,
    passkeys,
    mfa,
    desktopDevices: createDesktopDevices({ planOf: plans.planOf, devicesOf: sessions.desktopDevices }),
    upstreams: createUpstreamService({ db: deps.db, queries: queries.upstreams, users: queries.users, secrets: deps.secrets }),
  };
}

export type Libraries = ReturnType<typeof createLibraries>;

/**
 * Client metadata is validated by a provider configured like the server's, accepting the scopes the
 * new client declares (a new API scope needs a registration, not a restart). Validation signs
 * nothing, so that provider gets a throwaway key rather than the keystore's.
 */
export function createClientValidator(config: Config, db: Kysely<Tables>, users: UserQueries): ValidateClient {
  let throwaway: ReturnType<typeof generateSigningKey> | undefined;
  return async (metadata: Metadata) => {
    // One RSA key per validator, however many clients an import validates.
    throwaway ??= generateSigningKey();
    const provider = createProvider({
      issuer: config.issuer,
      jwks: { keys: [(await throwaway).privateJwk] },
      cookieKeys: [randomBytes(32).toString('base64url')],
      adapter: createOidcAdapter(db),
      scopes: await acceptedScopes(db, config.api.scopes, [metadata]),
      users,
      api: config.api,
    });
    await provider.Client.validate(metadata);
  };
}
