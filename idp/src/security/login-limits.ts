import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { HttpError } from '../http/errors.ts';
import { RateLimiterKysely, type RateLimitTables } from './rate-limit-store.ts';

/** Failed sign-ins allowed per window: per client IP, and per account across all IPs. */
export const LOGIN_LIMITS = {
  ip: { points: 5, duration: 15 * 60 },
  account: { points: 10, duration: 60 * 60 },
} as const;

export interface LoginLimitStore {
  db: Kysely<RateLimitTables>;
  /** With Redis the counters are shared by every process; without, they live in the database. */
  redis?: { client: Redis; prefix: string } | undefined;
}

export class LoginLimited extends HttpError {
  readonly limit: 'ip' | 'account';
  readonly retryAfterSeconds: number;

  constructor(limit: 'ip' | 'account', msBeforeNext: number) {
    const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    const minutes = Math.ceil(seconds / 60);
    super(
      429,
      'Too many sign-in attempts',
      `There were too many failed attempts to sign in${limit === 'account' ? ' to this account' : ' from your network'}. ` +
        `Try again in ${minutes === 1 ? '1 minute' : `${minutes} minutes`}. If you forgot your password, wait and try again; nothing has been changed.`,
      { 'Retry-After': String(seconds) },
    );
    this.limit = limit;
    this.retryAfterSeconds = seconds;
  }
}

function unavailable(): HttpError {
  return new HttpError(503, 'Sign-in is briefly unavailable', 'JobSwipe could not check this sign-in right now. Wait a minute, then try again.');
}

/** Accounts are counted by a hash of the address: no email addresses in the counters' keys. */
export const accountKey = (email: string) => createHash('sha256').update(email.trim().toLowerCase()).digest('hex');

/**
 * A counter in Redis when it is configured (shared by every process), else in the database. While
 * Redis is away it fails at once rather than queueing, or, with `databaseWhileRedisIsDown`, counts in
 * the database until Redis is back (rate-limiter-flexible's insurance limiter).
 */
export function limiter(
  store: LoginLimitStore,
  name: string,
  limits: { points: number; duration: number },
  options: { databaseWhileRedisIsDown?: boolean } = {},
): RateLimiterAbstract {
  const database = new RateLimiterKysely({ db: store.db, keyPrefix: `ratelimit:${name}`, points: limits.points, duration: limits.duration });
  if (!store.redis) return database;
  return new RateLimiterRedis({
    storeClient: store.redis.client,
    keyPrefix: `${store.redis.prefix}ratelimit:${name}`,
    points: limits.points,
    duration: limits.duration,
    rejectIfRedisNotReady: true,
    ...(options.databaseWhileRedisIsDown ? { insuranceLimiter: database } : {}),
  });
}

/** Counts one failure against key; a counter already over its limit is fine: the next check refuses. */
export async function countFailure(rateLimiter: RateLimiterAbstract, key: string): Promise<void> {
  try {
    await rateLimiter.consume(key);
  } catch (error) {
    if (!(error instanceof RateLimiterRes)) throw error;
  }
}

/**
 * Counts one request against key: `undefined` when it is within the limit, else the seconds until the
 * next is allowed. A store that cannot answer refuses the request (503): the limits fail closed.
 */
export async function spendPoint(rateLimiter: RateLimiterAbstract, key: string): Promise<number | undefined> {
  try {
    await rateLimiter.consume(key);
    return undefined;
  } catch (error) {
    if (error instanceof RateLimiterRes) return Math.max(1, Math.ceil(error.msBeforeNext / 1000));
    throw new HttpError(503, 'Briefly unavailable', 'JobSwipe could not check this request right now. Wait a minute, then try again.');
  }
}

/**
 * Counts one request against key; over the limit it throws a 429 page error with Retry-After that
 * says there were too many `what` (e.g. "sign-ups") from the user's network. Fails closed like spendPoint.
 */
export async function spendOrRefuse(rateLimiter: RateLimiterAbstract, key: string, what: string): Promise<void> {
  const seconds = await spendPoint(rateLimiter, key);
  if (seconds === undefined) return;
  throw new HttpError(429, `Too many ${what}`, `There were too many ${what} from your network. Try again in ${Math.ceil(seconds / 60)} minutes.`, {
    'Retry-After': String(seconds),
  });
}

/**
 * Runs an operation on limit counters so that the limits fail closed: a refusal (isRefusal) passes
 * through, and anything else (the store is unavailable) becomes the error unavailable() makes.
 */
export async function failClosed<T>(operation: () => Promise<T>, isRefusal: (error: unknown) => boolean, unavailable: (cause: unknown) => Error): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (isRefusal(error)) throw error;
    throw unavailable(error);
  }
}

/**
 * Brute-force limits on the login form. A request is refused (429, Retry-After) before its password
 * is checked when its IP or the account it names is over the limit; failures count against both;
 * a success clears the IP's count. A store outage refuses sign-in (503): the limits fail closed.
 */
export function createLoginLimits(store: LoginLimitStore) {
  const byIp = limiter(store, 'login-ip', LOGIN_LIMITS.ip);
  const byAccount = limiter(store, 'login-account', LOGIN_LIMITS.account);

  const guarded = <T>(operation: () => Promise<T>) => failClosed(operation, (error) => error instanceof HttpError, unavailable);

  return {
    async check(ip: string, email: string): Promise<void> {
      await guarded(async () => {
        const [ipState, accountState] = await Promise.all([byIp.get(ip), byAccount.get(accountKey(email))]);
        if (ipState && ipState.consumedPoints >= LOGIN_LIMITS.ip.points) throw new LoginLimited('ip', ipState.msBeforeNext);
        if (accountState && accountState.consumedPoints >= LOGIN_LIMITS.account.points) {
          throw new LoginLimited('account', accountState.msBeforeNext);
        }
      });
    },
    async failed(ip: string, email: string): Promise<void> {
      await guarded(() => Promise.all([countFailure(byIp, ip), countFailure(byAccount, accountKey(email))]));
    },
    async succeeded(ip: string): Promise<void> {
      await guarded(() => byIp.delete(ip));
    },
    /** After a password reset: the account's failed sign-ins no longer hold its owner out. */
    async accountRecovered(email: string): Promise<void> {
      await guarded(() => byAccount.delete(accountKey(email)));
    },
  };
}

export type LoginLimits = ReturnType<typeof createLoginLimits>;
