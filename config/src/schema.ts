import { z } from 'zod';

const port = z.coerce.number().int().min(1).max(65535);
const seconds = z.coerce.number().int().positive();
const flag = z.enum(['true', 'false']).transform((value) => value === 'true');
const csv = (separator: RegExp) =>
  z.string().transform((value) => value.split(separator).map((part) => part.trim()).filter(Boolean));

/**
 * Every setting the provider reads, one environment variable per field. Each field carries its
 * default and a description; `npm run docs:config` turns this object into docs/configuration.md.
 */
export const environmentSchema = z.object({
  NODE_ENV: z
    .enum(['development', 'production', 'test'])
    .default('development')
    .describe('`production` turns on the production guards: https issuer, DATABASE_URL and COOKIE_KEYS required.'),
  PORT: port.default(4000).describe('TCP port the HTTP server listens on.'),
  HOST: z
    .string()
    .min(1)
    .default('localhost')
    .describe('Address to listen on. `localhost` listens on both 127.0.0.1 and ::1; use `0.0.0.0` or `::` in a container.'),
  METRICS_PORT: z.coerce
    .number()
    .int()
    .min(0)
    .max(65535)
    .default(9464)
    .describe('TCP port of the Prometheus metrics listener (`GET /metrics`), separate from PORT: metrics are never served on the public port. `0` picks a free port (logged at start). See docs/monitoring.md.'),
  METRICS_HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe('Address the metrics listener binds to. Keep it on loopback or a private network the Prometheus server reaches; in a container, `0.0.0.0` with the port left unpublished.'),
  ISSUER: z
    .url({ protocol: /^https?$/, normalize: false })
    .refine((value) => !/[?#]/.test(value) && !value.endsWith('/'), 'must have no query, fragment or trailing slash')
    .optional()
    .describe('Issuer identifier published in discovery, exactly as relying parties must see it. Default `http://localhost:$PORT`.'),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .optional()
    .describe('Postgres connection string. Unset: the embedded store (PGlite) under DATA_DIR, for development only.'),
  REDIS_URL: z
    .url({ protocol: /^rediss?$/ })
    .optional()
    .describe('Redis for sessions, interactions, codes and other short-lived state. Unset: they stay in the database.'),
  REDIS_SENTINELS: z
    .string()
    .transform((value, ctx) => {
      const sentinels = [];
      for (const entry of value.split(',').map((part) => part.trim()).filter(Boolean)) {
        const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?$/.exec(entry);
        const port = Number(match?.[2] ?? 26379);
        if (!match || port < 1 || port > 65535) {
          ctx.addIssue({ code: 'custom', message: `expected host:port entries separated by commas, got "${entry}"` });
          return z.NEVER;
        }
        sentinels.push({ host: match[1]!.replace(/^\[|\]$/g, ''), port });
      }
      if (sentinels.length === 0) {
        ctx.addIssue({ code: 'custom', message: 'names no Sentinel' });
        return z.NEVER;
      }
      return sentinels;
    })
    .optional()
    .describe('Redis Sentinels (`host:port,host:port`; port 26379 if left out) that name the current primary of REDIS_SENTINEL_MASTER, instead of REDIS_URL: the provider follows a failover by itself.'),
  REDIS_SENTINEL_MASTER: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'letters, digits and . _ - only')
    .default('mymaster')
    .describe('The name the Sentinels monitor the primary under (their `sentinel monitor` line).'),
  REDIS_PASSWORD: z.string().min(1).optional().describe('With REDIS_SENTINELS: the password of the primary and its replicas (with REDIS_URL, it goes in the URL).'),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional().describe('With REDIS_SENTINELS: the password of the Sentinels themselves, when they have one.'),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:._-]{1,64}$/, 'letters, digits and : . _ - only')
    .default('jobswipe:')
    .describe('Prefix of every Redis key this provider writes, so several deployments can share one Redis.'),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10).describe('Largest number of pooled Postgres connections per process.'),
  DATA_DIR: z.string().min(1).default('./.data').describe('Directory for the embedded store and generated development secrets.'),
  MIGRATE_ON_START: z
    .enum(['auto', 'true', 'false'])
    .default('auto')
    .describe('Run pending migrations at start-up. `auto`: yes for the embedded store, no for Postgres (run `idp migrate`).'),
  COOKIE_KEYS: csv(/,/)
    .pipe(z.array(z.string().min(32, 'each key must be at least 32 characters')).min(1))
    .optional()
    .describe('Comma-separated keys that sign cookies, newest first (older keys still verify). Required in production; generated into DATA_DIR otherwise.'),
  API_RESOURCE: z
    .url()
    .default('urn:jobswipe:api')
    .describe('Resource indicator (audience) of the JobSwipe API; JWT access tokens are issued for it.'),
  API_SCOPES: csv(/[\s,]+/)
    .pipe(z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'scopes are printable ASCII without quotes or backslashes')))
    .default(['api:read', 'api:write'])
    .describe('Scopes of the API resource, space- or comma-separated. Scopes registered on clients are accepted too.'),
  DEFAULT_PLAN: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be a plan id: lower-case letters, digits, "_" or "-"')
    .default('free')
    .describe('The plan of a user who has no subscription (`idp plans set`); it must exist (`idp plans list`). The migrations create `free`. See docs/usage.md.'),
  KEYSTORE_KEK: z
    .string()
    .regex(/^[A-Za-z0-9+/_-]{43}=?$/, 'must be 32 bytes in base64 (create one with `openssl rand -base64 32`)')
    .optional()
    .describe('Key-encryption key that seals the private signing keys (32 bytes, base64). Required in production unless KEYSTORE_KEK_FILE is set.'),
  KEYSTORE_KEK_FILE: z
    .string()
    .min(1)
    .optional()
    .describe('File holding the key-encryption key, instead of KEYSTORE_KEK. Outside production, with neither set, one is generated in DATA_DIR/keystore.kek.'),
  KEY_ROTATION_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(30 * 24 * 60 * 60)
    .describe('How long a signing key signs before the next one takes over (default 30 days).'),
  JWKS_CACHE_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60 * 60)
    .default(60 * 60)
    .describe('JWKS Cache-Control max-age. A new key is published this long (plus two poll intervals) before it signs.'),
  KEYSTORE_POLL_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(30)
    .default(10)
    .describe('How often each process applies due rotations and picks up key changes made elsewhere (at most 30).'),
  BCRYPT_COST: z.coerce.number().int().min(12, 'must be at least 12').max(16).default(12).describe('bcrypt cost factor for new password hashes (12 to 16).'),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
    .default('info')
    .describe(
      'pino log level. `debug` and `trace` are refused in production. Lines go to standard output in batches (every 100 ms, or at 4 KB): a process killed outright loses at most its last 100 ms of lines, never an audit event.',
    ),
  SWEEP_INTERVAL_SECONDS: seconds.default(300).describe('How often expired tokens, codes and sessions are deleted from the database.'),
  BACKCHANNEL_LOGOUT_ALLOW_LOOPBACK: flag
    .optional()
    .describe('Deliver back-channel logout tokens to loopback addresses (127.0.0.0/8, ::1, localhost). Default `true` outside production; refused in production.'),
  BACKCHANNEL_LOGOUT_ALLOW_PRIVATE: flag
    .default(false)
    .describe('Deliver back-channel logout tokens to private and link-local addresses (10/8, 172.16/12, 192.168/16, fc00::/7...), for relying parties on an internal network.'),
  BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: z.coerce
    .number()
    .int()
    .min(1)
    .max(30)
    .default(5)
    .describe('How long one back-channel logout delivery may take before it counts as failed.'),
  BACKCHANNEL_LOGOUT_RETRIES: z.coerce
    .number()
    .int()
    .min(0)
    .max(10)
    .default(3)
    .describe('Further attempts after a failed back-channel logout delivery (network error, timeout, 5xx, 429), with exponential backoff from 1 s.'),
  TRUST_PROXY: csv(/,/)
    .pipe(
      z.array(
        z.union([z.enum(['loopback', 'linklocal', 'uniquelocal']), z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], {
          error: 'each entry must be an IP address, a CIDR range, or loopback / linklocal / uniquelocal',
        }),
      ),
    )
    .default([])
    .describe('Reverse proxies whose `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are believed when they are the immediate peer, comma-separated (IP addresses, CIDR ranges, or `loopback`, `linklocal`, `uniquelocal`). Behind a TLS-terminating proxy, set it so that cookies are `Secure`. Unset: the client address and scheme are the connection\'s, and those headers are ignored.'),
  TOKEN_RATE_LIMIT_PER_MINUTE: z.coerce
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(6000)
    .describe('Requests one client may make per minute to the token, introspection, revocation, pushed authorization and device authorization endpoints, counted by the client id the request names; further requests get 429. The default (100 a second) is far above what a client makes: each signed-in user refreshes about 4 times an hour.'),
  REFRESH_TOKEN_REUSE_GRACE_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(60)
    .default(10)
    .describe('For how long after a refresh token was rotated the same client may present it again and get the same new tokens (a retry after a lost response, two tabs or two app instances refreshing at once) instead of the grant being revoked as a stolen token. `0` turns the grace period off: any second use revokes the grant. At most 60. See docs/sessions.md.'),
  SMTP_URL: z
    .url({ protocol: /^smtps?$/ })
    .optional()
    .describe('SMTP server for account mails (sign-up, verification), e.g. `smtps://user:pass@mail.example:465`. Required in production. Unset: mails are written as `.eml` files under DATA_DIR/mail/ (links are logged in development).'),
  MAIL_FROM: z
    .string()
    .min(3)
    .max(320)
    .default('JobSwipe <no-reply@jobswipe.localhost>')
    .describe('Sender (From) of account mails, as `Name <address>` or an address.'),
  SIGNUP: z
    .enum(['open', 'invite', 'closed'])
    .default('open')
    .describe('Self-service sign-up ("Create account" on the login page): `open` (anyone), `invite` (only a browser that opened a link from `idp users invite --email E`, for that address) or `closed` (no link, the page answers 404; administrators use `idp users create`). See docs/accounts.md.'),
  UNVERIFIED_SIGN_IN: flag
    .default(true)
    .describe('Whether users who have not verified their email may sign in. `true`: they may, and their `email_verified` claim is false.'),
  WORKERS: z.coerce
    .number()
    .int()
    .min(1)
    .max(64)
    .default(1)
    .describe('Server processes sharing the port (node:cluster), each with its own pools; a crashed one is replaced. More than 1 needs Postgres (the embedded store belongs to one process).'),
  THREADPOOL_NICENESS: z.coerce
    .number()
    .int()
    .min(0)
    .max(19)
    .default(10)
    .describe(
      'The scheduling niceness of the libuv threadpool, where password hashes run (Linux, Node 22.13 and later): the hashes get the CPU the event loop leaves, so other requests do not wait behind them. It orders the threads of the provider\'s own scheduling group (its container or systemd cgroup, or its session); in a group shared with other busy processes the hashes yield to those too and sign-ins slow down, so set `0` there. See docs/scaling.md.',
    ),
  SHUTDOWN_GRACE_SECONDS: z.coerce.number().int().min(1).max(9).default(8).describe('On SIGTERM, how long in-flight requests may take before connections are closed.'),
});

export type Environment = z.output<typeof environmentSchema>;

/** The name of every environment variable the provider reads (for tools that check deployment files). */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.freeze(Object.keys(environmentSchema.shape));
