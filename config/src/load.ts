import { environmentSchema } from './schema.ts';

export type StoreConfig =
  | { kind: 'postgres'; url: string; poolMax: number }
  | { kind: 'embedded'; dataDir: string };

/** One Redis by its URL, or the primary the Sentinels name (followed through a failover). */
export type RedisConfig = { keyPrefix: string } & (
  | { kind: 'url'; url: string }
  | { kind: 'sentinel'; sentinels: Array<{ host: string; port: number }>; master: string; password: string | undefined; sentinelPassword: string | undefined }
);

export interface Config {
  env: 'development' | 'production' | 'test';
  production: boolean;
  port: number;
  host: string;
  /** METRICS_PORT and METRICS_HOST: the Prometheus listener, never the public one. */
  metrics: { port: number; host: string };
  issuer: string;
  dataDir: string;
  store: StoreConfig;
  /** Where the hot models live besides the database; undefined keeps them in the database. */
  redis: RedisConfig | undefined;
  migrateOnStart: boolean;
  /** undefined outside production until the caller supplies generated development keys. */
  cookieKeys: string[] | undefined;
  api: { resource: string; scopes: string[] };
  /** DEFAULT_PLAN: the plan of a user without a subscription. */
  defaultPlan: string;
  keystore: {
    /** The key-encryption key as given (base64), or the file that holds it; neither outside production means generated. */
    kek: { kind: 'value'; value: string } | { kind: 'file'; path: string } | { kind: 'generated' };
    rotationSeconds: number;
    jwksCacheSeconds: number;
    pollSeconds: number;
  };
  bcryptCost: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  sweepIntervalSeconds: number;
  shutdownGraceSeconds: number;
  /** WORKERS: server processes sharing the port. */
  workers: number;
  /** THREADPOOL_NICENESS: the threadpool's niceness (0: unchanged). */
  threadpoolNiceness: number;
  /** Proxies trusted to set X-Forwarded-For (proxy-addr syntax); empty trusts none. */
  trustProxy: string[];
  /** Requests per minute one client may make to the endpoints that authenticate clients. */
  tokenRateLimitPerMinute: number;
  /** Seconds after a rotation in which the same client presenting the rotated refresh token gets the same answer again; 0: never. */
  refreshTokenReuseGraceSeconds: number;
  /** Account mails: SMTP, or (no URL) .eml files under DATA_DIR/mail/. */
  mail: { smtpUrl: string | undefined; from: string };
  signup: 'open' | 'invite' | 'closed';
  /** Whether users with an unverified email may sign in. */
  unverifiedSignIn: boolean;
  backchannelLogout: {
    /** Loopback and private destinations are refused unless allowed here (SSRF protection). */
    allowLoopback: boolean;
    allowPrivate: boolean;
    timeoutSeconds: number;
    retries: number;
  };
}

export interface ConfigProblem {
  variable: string;
  message: string;
}

/** Thrown when the environment does not describe a valid configuration; lists every problem at once. */
export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG_INVALID';
  readonly problems: ConfigProblem[];

  constructor(problems: ConfigProblem[]) {
    super(
      `Invalid configuration:\n${problems.map((p) => `  ${p.variable}: ${p.message}`).join('\n')}`,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Reads the configuration from environment variables. Empty strings count as unset. */
export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  const variables = Object.fromEntries(
    Object.keys(environmentSchema.shape).flatMap((name) => {
      const value = source[name];
      return value === undefined || value === '' ? [] : [[name, value]];
    }),
  );
  const parsed = environmentSchema.safeParse(variables);
  const problems: ConfigProblem[] = parsed.success
    ? []
    : parsed.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? '(environment)'), message: issue.message }));

  // The production guards look at the raw values too, so one run reports every problem at once.
  const production = (parsed.success ? parsed.data.NODE_ENV : variables['NODE_ENV']) === 'production';
  const rawIssuer = parsed.success ? parsed.data.ISSUER : variables['ISSUER'];
  const issuer = rawIssuer ?? `http://localhost:${parsed.success ? parsed.data.PORT : (variables['PORT'] ?? 4000)}`;
  if (production) {
    if (!issuer.startsWith('https://') && !problems.some((p) => p.variable === 'ISSUER')) {
      problems.push({ variable: 'ISSUER', message: 'must be an https URL in production' });
    }
    if (!variables['DATABASE_URL']) {
      problems.push({ variable: 'DATABASE_URL', message: 'is required in production (the embedded store is for development)' });
    }
    if (!variables['COOKIE_KEYS']) {
      problems.push({ variable: 'COOKIE_KEYS', message: 'is required in production (generated development keys are refused)' });
    }
    if (!variables['KEYSTORE_KEK'] && !variables['KEYSTORE_KEK_FILE']) {
      problems.push({ variable: 'KEYSTORE_KEK', message: 'or KEYSTORE_KEK_FILE is required in production (a generated key-encryption key is refused)' });
    }
    if (variables['LOG_LEVEL'] === 'debug' || variables['LOG_LEVEL'] === 'trace') {
      problems.push({ variable: 'LOG_LEVEL', message: 'must not be debug or trace in production (debug output is for development); use info, warn or error' });
    }
    if (!variables['SMTP_URL']) {
      problems.push({ variable: 'SMTP_URL', message: 'is required in production (account mails must be delivered, not written to DATA_DIR/mail)' });
    }
    if (variables['BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK'] === 'true') {
      problems.push({ variable: 'BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK', message: 'must not be true in production (logout tokens are never sent to loopback addresses there)' });
    }
  }
  if (parsed.success && parsed.data.WORKERS > 1 && !parsed.data.DATABASE_URL) {
    problems.push({ variable: 'WORKERS', message: 'more than 1 needs DATABASE_URL (the embedded store belongs to one process)' });
  }
  if (parsed.success && parsed.data.METRICS_PORT === parsed.data.PORT) {
    problems.push({ variable: 'METRICS_PORT', message: 'must differ from PORT (metrics are never served on the public port)' });
  }
  if (variables['REDIS_URL'] && variables['REDIS_SENTINELS']) {
    problems.push({ variable: 'REDIS_SENTINELS', message: 'set either REDIS_URL or REDIS_SENTINELS, not both' });
  }
  for (const name of ['REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD'] as const) {
    if (variables[name] && !variables['REDIS_SENTINELS']) {
      problems.push({ variable: name, message: 'is for REDIS_SENTINELS (with REDIS_URL, the password goes in the URL)' });
    }
  }
  if (variables['KEYSTORE_KEK'] && variables['KEYSTORE_KEK_FILE']) {
    problems.push({ variable: 'KEYSTORE_KEK_FILE', message: 'set either KEYSTORE_KEK or KEYSTORE_KEK_FILE, not both' });
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const env = parsed.data;

  const store: StoreConfig = env.DATABASE_URL
    ? { kind: 'postgres', url: env.DATABASE_URL, poolMax: env.DATABASE_POOL_MAX }
    : { kind: 'embedded', dataDir: env.DATA_DIR };

  return {
    env: env.NODE_ENV,
    production,
    port: env.PORT,
    host: env.HOST,
    metrics: { port: env.METRICS_PORT, host: env.METRICS_HOST },
    issuer,
    dataDir: env.DATA_DIR,
    store,
    redis: env.REDIS_URL
      ? { kind: 'url', url: env.REDIS_URL, keyPrefix: env.REDIS_KEY_PREFIX }
      : env.REDIS_SENTINELS
        ? {
            kind: 'sentinel',
            sentinels: env.REDIS_SENTINELS,
            master: env.REDIS_SENTINEL_MASTER,
            password: env.REDIS_PASSWORD,
            sentinelPassword: env.REDIS_SENTINEL_PASSWORD,
            keyPrefix: env.REDIS_KEY_PREFIX,
          }
        : undefined,
    migrateOnStart: env.MIGRATE_ON_START === 'auto' ? store.kind === 'embedded' : env.MIGRATE_ON_START === 'true',
    cookieKeys: env.COOKIE_KEYS,
    api: { resource: env.API_RESOURCE, scopes: env.API_SCOPES },
    defaultPlan: env.DEFAULT_PLAN,
    keystore: {
      kek: env.KEYSTORE_KEK
        ? { kind: 'value', value: env.KEYSTORE_KEK }
        : env.KEYSTORE_KEK_FILE
          ? { kind: 'file', path: env.KEYSTORE_KEK_FILE }
          : { kind: 'generated' },
      rotationSeconds: env.KEY_ROTATION_SECONDS,
      jwksCacheSeconds: env.JWKS_CACHE_SECONDS,
      pollSeconds: env.KEYSTORE_POLL_SECONDS,
    },
    bcryptCost: env.BCRYPT_COST,
    logLevel: env.LOG_LEVEL,
    sweepIntervalSeconds: env.SWEEP_INTERVAL_SECONDS,
    shutdownGraceSeconds: env.SHUTDOWN_GRACE_SECONDS,
    workers: env.WORKERS,
    threadpoolNiceness: env.THREADPOOL_NICENESS,
    trustProxy: env.TRUST_PROXY,
    tokenRateLimitPerMinute: env.TOKEN_RATE_LIMIT_PER_MINUTE,
    refreshTokenReuseGraceSeconds: env.REFRESH_TOKEN_REUSE_GRACE_SECONDS,
    mail: { smtpUrl: env.SMTP_URL, from: env.MAIL_FROM },
    signup: env.SIGNUP,
    unverifiedSignIn: env.UNVERIFIED_SIGN_IN,
    backchannelLogout: {
      allowLoopback: env.BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK ?? !production,
      allowPrivate: env.BACKCHANNEL_LOGOUT_ALLOW_PRIVATE,
      timeoutSeconds: env.BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS,
      retries: env.BACKCHANNEL_LOGOUT_RETRIES,
    },
  };
}
