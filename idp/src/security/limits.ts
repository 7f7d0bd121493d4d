import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Kysely } from 'kysely';
import { RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { HttpError } from '../http/errors.ts';
import { limitedNetwork } from '../http/client-ip.ts';
import { remembered } from '../remembered.ts';
import { DatabaseCounters, type RateLimitTables } from './database-counters.ts';
import { addressGate } from './address-gate.ts';
import { databaseCounterBatch, insuredCounterBatch, redisCounterBatch, type BatchEntry, type CounterBatch } from './counter-batch.ts';

/** Accounts are counted by a hash of the address: no email addresses in the counters' keys. */
export const accountKey = (email: string) => createHash('sha256').update(email.trim().toLowerCase()).digest('hex');

/** Client ids are chosen by whoever sends the request: hashed, so a key in the store has a fixed size. */
const clientKey = remembered((clientId) => createHash('sha256').update(clientId).digest('hex'));
const networkOf = remembered(limitedNetwork);

/** What a limit counts under, and how its key is made from the request. */
const KEYS = {
  /** The client's address; an IPv6 address by its /64 (http/client-ip.ts). */
  ip: (of: { ip: string }) => networkOf(of.ip),
  /** The account an email address names (a SHA-256 of the address), across all addresses. */
  account: (of: { email: string }) => accountKey(of.email),
  /** One client id from one address: a client's failures elsewhere never refuse it here. */
  'client+ip': (of: { clientId: string; ip: string }) => `${clientKey(of.clientId)}:${networkOf(of.ip)}`,
  /** The client id a request names, across all addresses. */
  client: (of: { clientId: string }) => clientKey(of.clientId),
  /** A signed-in user (their uuid). */
  user: (of: { userId: string }) => of.userId,
} as const;

type Subject<K extends keyof typeof KEYS> = Parameters<(typeof KEYS)[K]>[0];

const inMinutes = (seconds: number) => {
  const minutes = Math.ceil(seconds / 60);
  return minutes === 1 ? '1 minute' : `${minutes} minutes`;
};
const tooManyFromYourNetwork = (what: string) => (seconds: number) => ({
  title: `Too many ${what}`,
  message: `There were too many ${what} from your network. Try again in ${Math.ceil(seconds / 60)} minutes.`,
});
const tooManySignIns = (where: string) => (seconds: number) => ({
  title: 'Too many sign-in attempts',
  message:
    `There were too many failed attempts to sign in ${where}. ` +
    `Try again in ${inMinutes(seconds)}. If you forgot your password, wait and try again; nothing has been changed.`,
});
const retryLater = (what: string) => (seconds: number) => ({ title: 'Too many requests', message: `${what}; try again in ${seconds} seconds` });

const unavailable = (title: string, what: string) => ({ title, message: `JobSwipe could not check ${what} right now. Wait a minute, then try again.` });
const SIGN_IN_UNAVAILABLE = unavailable('Sign-in is briefly unavailable', 'this sign-in');
const REQUEST_UNAVAILABLE = unavailable('Briefly unavailable', 'this request');
/** The token endpoints answer this in OAuth JSON (token-limits.ts). */
const CLIENT_AUTH_UNAVAILABLE = { title: 'Briefly unavailable', message: 'client authentication cannot be checked right now; try again in a minute' };

interface Limit {
  /** What one point is. */
  counts: string;
  key: keyof typeof KEYS;
  /** Points per window; the request budget's comes from TOKEN_RATE_LIMIT_PER_MINUTE. */
  points: number | 'TOKEN_RATE_LIMIT_PER_MINUTE';
  seconds: number;
  /**
   * `refuse`: while the store cannot answer, the guarded request gets 503 (the limit fails closed).
   * `database`: while Redis is down the counter is kept in the database, and only if that fails too, 503.
   */
  whenStoreFails: 'refuse' | 'database';
  /** What happens to the point when the guarded check succeeds. */
  onSuccess: string;
  usedBy: string;
  /** `details.limit` of the audit row of a refusal. */
  reported: string;
  /** The title and text a refused user or client reads. */
  refusal: (retryAfterSeconds: number) => { title: string; message: string };
  unavailable: { title: string; message: string };
}

/**
 * Every rate limit, in one table (docs/security.md lists it). Points are taken before the check they
 * guard (the password, the secret, the code), so parallel requests evaluate at most `points` of them;
 * over the limit the request is refused with 429 and Retry-After before anything is checked.
 */
export const LIMITS = {
  'login-ip': {
    counts: 'failed sign-ins, wrong second-factor codes and wrong current passwords or codes on /account',
    key: 'ip',
    points: 5,
    seconds: 15 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'the attempt is given back; earlier failures from the address stay',
    usedBy: 'login form, second-factor page, /account password and code checks',
    reported: 'ip',
    refusal: tooManySignIns('from your network'),
    unavailable: SIGN_IN_UNAVAILABLE,
  },
  'login-account': {
    counts: 'failed sign-ins, wrong second-factor codes and wrong current passwords or codes on /account',
    key: 'account',
    points: 10,
    seconds: 60 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'the attempt is given back; a password reset clears the count',
    usedBy: 'login form, second-factor page, /account password and code checks',
    reported: 'account',
    refusal: tooManySignIns('to this account'),
    unavailable: SIGN_IN_UNAVAILABLE,
  },
  'device-code-ip': {
    counts: 'wrong user codes on /device (RFC 8628 §5.1)',
    key: 'ip',
    points: 5,
    seconds: 15 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'a real code (right, expired or used) is given back; earlier wrong codes stay',
    usedBy: '/device',
    reported: 'ip',
    refusal: (seconds) => ({ title: 'Too many wrong codes', message: `Too many wrong codes were entered from your network. Try again in ${inMinutes(seconds)}.` }),
    unavailable: unavailable('Briefly unavailable', 'this code'),
  },
  'client-auth-ip': {
    counts: 'failed client authentications (invalid_client, or a secret sent by an unregistered method)',
    key: 'ip',
    points: 5,
    seconds: 15 * 60,
    whenStoreFails: 'database',
    onSuccess: "a client that authenticates clears the address's count",
    usedBy: 'token, introspection, revocation, PAR, device authorization endpoints',
    reported: 'ip',
    refusal: retryLater('too many failed client authentications from this address'),
    unavailable: CLIENT_AUTH_UNAVAILABLE,
  },
  'client-auth-client-ip': {
    counts: 'failed client authentications naming one client id',
    key: 'client+ip',
    points: 10,
    seconds: 60 * 60,
    whenStoreFails: 'database',
    onSuccess: "the client's count at that address is cleared",
    usedBy: 'token, introspection, revocation, PAR, device authorization endpoints',
    reported: 'client+ip',
    refusal: retryLater('too many failed client authentications for this client from this address'),
    unavailable: CLIENT_AUTH_UNAVAILABLE,
  },
  'token-requests': {
    counts: 'requests naming one client id',
    key: 'client',
    points: 'TOKEN_RATE_LIMIT_PER_MINUTE',
    seconds: 60,
    whenStoreFails: 'database',
    onSuccess: 'counted',
    usedBy: 'token, introspection, revocation, PAR, device authorization endpoints',
    reported: 'requests',
    refusal: retryLater('this client made too many requests'),
    unavailable: CLIENT_AUTH_UNAVAILABLE,
  },
  'signup-ip': {
    counts: 'sign-ups',
    key: 'ip',
    points: 10,
    seconds: 60 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'counted',
    usedBy: 'sign-up form',
    reported: 'ip',
    refusal: tooManyFromYourNetwork('sign-ups'),
    unavailable: REQUEST_UNAVAILABLE,
  },
  'verify-resend-ip': {
    counts: 'requests for a new verification mail',
    key: 'ip',
    points: 5,
    seconds: 60 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'counted',
    usedBy: 'sign-up "send again", /verify-email/resend',
    reported: 'ip',
    refusal: tooManyFromYourNetwork('requests for a new email'),
    unavailable: REQUEST_UNAVAILABLE,
  },
  'reset-ip': {
    counts: 'password reset requests',
    key: 'ip',
    points: 10,
    seconds: 60 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'counted',
    usedBy: '/forgot-password',
    reported: 'ip',
    refusal: tooManyFromYourNetwork('password reset requests'),
    unavailable: REQUEST_UNAVAILABLE,
  },
  'reset-address': {
    counts: 'password reset mails to one address (over the limit: the same answer, no mail)',
    key: 'account',
    points: 3,
    seconds: 60 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'counted',
    usedBy: '/forgot-password',
    reported: 'address',
    refusal: tooManyFromYourNetwork('password reset requests'),
    unavailable: REQUEST_UNAVAILABLE,
  },
  'email-change-user': {
    counts: 'email change requests (each mails an address the user chose)',
    key: 'user',
    points: 5,
    seconds: 60 * 60,
    whenStoreFails: 'refuse',
    onSuccess: 'counted',
    usedBy: '/account/email',
    reported: 'user',
    refusal: (seconds) => ({
      title: 'Too many email changes',
      message: `You asked to change your address too often. Try again in ${Math.ceil(seconds / 60)} minutes. Nothing was changed.`,
    }),
    unavailable: REQUEST_UNAVAILABLE,
  },
} as const satisfies Record<string, Limit>;

export type LimitName = keyof typeof LIMITS;
type SubjectOf<N extends LimitName> = Subject<(typeof LIMITS)[N]['key']>;

/** A request refused by a limit: 429 with Retry-After, as a page (HttpError) or, on the token endpoints, as OAuth JSON. */
export class RateLimited extends HttpError {
  readonly limit: LimitName;
  readonly retryAfterSeconds: number;

  constructor(limit: LimitName, msBeforeNext: number) {
    const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    const { title, message } = LIMITS[limit].refusal(seconds);
    super(429, title, message, { 'Retry-After': String(seconds) });
    this.name = 'RateLimited';
    this.limit = limit;
    this.retryAfterSeconds = seconds;
  }

  /** What the audit row's `details.limit` says. */
  get reported(): string {
    return LIMITS[this.limit].reported;
  }
}

/** The limit's store could not answer: the guarded request is refused (503), the limits fail closed. */
export class LimitsUnavailable extends HttpError {
  readonly limit: LimitName;

  constructor(limit: LimitName, cause: unknown) {
    const { title, message } = LIMITS[limit].unavailable;
    super(503, title, message, { 'Retry-After': '60' });
    this.name = 'LimitsUnavailable';
    this.limit = limit;
    this.cause = cause;
  }
}

/** Where the counters live: Redis when it is configured (shared by every process), else the database. */
export interface LimitStore {
  db: Kysely<RateLimitTables>;
  redis?: { client: Redis; prefix: string } | undefined;
}

/** One limit's counter, keyed as its table row says. */
export interface Counter<N extends LimitName> {
  /** Takes a point: RateLimited when that is over the limit, LimitsUnavailable when the store cannot answer. */
  spend(subject: SubjectOf<N>): Promise<void>;
  /** Returns a point spend took, for an attempt that is not to count. */
  giveBack(subject: SubjectOf<N>): Promise<void>;
  /** Forgets the subject's count. */
  clear(subject: SubjectOf<N>): Promise<void>;
}

/** Told each refusal by a limit (the server's metrics count them by limit name). */
export type OnRateLimited = (limit: LimitName) => void;

function counter<N extends LimitName>(store: LimitStore, name: N, points: number, onLimited: OnRateLimited): Counter<N> {
  const limit: Limit = LIMITS[name];
  const options = { points, duration: limit.seconds };
  const database = new DatabaseCounters({ db: store.db, keyPrefix: `ratelimit:${name}`, ...options });
  const counters: RateLimiterAbstract = store.redis
    ? new RateLimiterRedis({
        storeClient: store.redis.client,
        keyPrefix: `${store.redis.prefix}ratelimit:${name}`,
        ...options,
        // Fail at once rather than queue while Redis is away; or count in the database meanwhile.
        rejectIfRedisNotReady: true,
        ...(limit.whenStoreFails === 'database' ? { insuranceLimiter: database } : {}),
      })
    : database;
  const keyOf = KEYS[limit.key] as (subject: SubjectOf<N>) => string;
  const onStore = async (operation: () => Promise<unknown>) => {
    try {
      await operation();
    } catch (error) {
      if (error instanceof RateLimiterRes) {
        onLimited(name);
        throw new RateLimited(name, error.msBeforeNext);
      }
      throw new LimitsUnavailable(name, error);
    }
  };
  return {
    spend: (subject) => onStore(() => counters.consume(keyOf(subject))),
    giveBack: (subject) => onStore(() => counters.reward(keyOf(subject), 1)),
    clear: (subject) => onStore(() => counters.delete(keyOf(subject))),
  };
}

/** Takes a point from each counter in turn; when one refuses, the points already taken are given back. */
async function spendAll(spends: ReadonlyArray<{ spend: () => Promise<void>; giveBack: () => Promise<void> }>): Promise<void> {
  const taken: Array<() => Promise<void>> = [];
  try {
    for (const { spend, giveBack } of spends) {
      await spend();
      taken.push(giveBack);
    }
  } catch (error) {
    // Best effort: the refusal is the answer, and a point not given back expires with its window.
    await Promise.allSettled(taken.map((giveBack) => giveBack()));
    throw error;
  }
}

/**
 * Failed sign-ins, per address and per account. A point is taken from both before the password is
 * checked; a right password gives both back. A success never clears the address's earlier failures
 * (open sign-up gives anyone an account to sign in to between guesses).
 */
function loginLimits(byIp: Counter<'login-ip'>, byAccount: Counter<'login-account'>) {
  return {
    async reserve(ip: string, email: string): Promise<{ passed(): Promise<void> }> {
      await spendAll([
        { spend: () => byIp.spend({ ip }), giveBack: () => byIp.giveBack({ ip }) },
        { spend: () => byAccount.spend({ email }), giveBack: () => byAccount.giveBack({ email }) },
      ]);
      return {
        passed: async () => {
          await Promise.all([byIp.giveBack({ ip }), byAccount.giveBack({ email })]);
        },
      };
    },
    /** After a password reset: the account's failed sign-ins no longer hold its owner out. */
    accountRecovered: (email: string) => byAccount.clear({ email }),
  };
}

/** Wrong device codes per address: a point before the code is looked up, given back for a real code. */
function deviceCodeLimits(byIp: Counter<'device-code-ip'>) {
  return {
    async reserve(ip: string): Promise<{ realCode(): Promise<void> }> {
      await byIp.spend({ ip });
      return { realCode: () => byIp.giveBack({ ip }) };
    },
  };
}

/** A limit's counter key as its own counters write it (rate-limiter-flexible's `keyPrefix:key`). */
const counterKey = (name: LimitName, key: string) => `ratelimit:${name}:${key}`;

/**
 * Failed client authentications per address and per client id at that address, and the request
 * budget per client id. Points are taken before the credentials are checked; the outcome then
 * decides: a failure keeps them, an authenticated client clears both counts at its address, any
 * other answer (no authentication was decided) gives them back. Each step is one round trip to the
 * store for all three counters (counter-batch.ts).
 */
function clientAuthLimits(batch: CounterBatch, requestPoints: number, onLimited: OnRateLimited) {
  // Points taken count as failures until the outcome is known, so a client's own burst from one
  // address would refuse itself: in this process, at most points - 1 of an address's requests hold
  // points at once and the rest wait their turn (a burst of wrong secrets is still refused at the limit).
  const enter = addressGate(LIMITS['client-auth-ip'].points - 1);
  const refusal = (name: LimitName, error: unknown) => (error instanceof HttpError ? error : new LimitsUnavailable(name, error));
  return {
    /** Takes the points; the caller calls `leave` once the outcome is counted (or the request ended). */
    async admit(ip: string, clientId: string | undefined): Promise<Admitted> {
      const limited: Array<{ name: LimitName; key: string; points: number }> = [
        { name: 'client-auth-ip', key: counterKey('client-auth-ip', KEYS.ip({ ip })), points: LIMITS['client-auth-ip'].points },
      ];
      if (clientId !== undefined) {
        limited.push(
          { name: 'client-auth-client-ip', key: counterKey('client-auth-client-ip', KEYS['client+ip']({ clientId, ip })), points: LIMITS['client-auth-client-ip'].points },
          { name: 'token-requests', key: counterKey('token-requests', KEYS.client({ clientId })), points: requestPoints },
        );
      }
      const failures = limited.filter(({ name }) => name !== 'token-requests').map(({ key }) => key);
      const leave = await enter(KEYS.ip({ ip }));
      try {
        const refused = await batch
          .spend(limited.map(({ name, key, points }) => ({ key, points, seconds: LIMITS[name].seconds })))
          .catch((error: unknown) => {
            throw refusal('client-auth-ip', error);
          });
        if (refused) {
          const { name } = limited[refused.index]!;
          onLimited(name);
          throw new RateLimited(name, refused.msBeforeNext);
        }
      } catch (error) {
        leave();
        throw error;
      }
      return {
        leave,
        authenticated: () => batch.clear(failures),
        undecided: () => batch.giveBack(failures),
        failed: async () => {},
      };
    },
    /**
     * A request whose secret was already found right (http/client-auth-method.ts): refused as any
     * other while its address or client is held out by failures; else it takes from the client's
     * request budget only and clears the failures at its address as a success does, in one round
     * trip, with no place in the address's queue. Should the provider refuse it after all, `failed`
     * counts the failure then.
     */
    async admitProven(ip: string, clientId: string): Promise<Admitted> {
      const failures: BatchEntry[] = [
        { key: counterKey('client-auth-ip', KEYS.ip({ ip })), points: LIMITS['client-auth-ip'].points, seconds: LIMITS['client-auth-ip'].seconds },
        {
          key: counterKey('client-auth-client-ip', KEYS['client+ip']({ clientId, ip })),
          points: LIMITS['client-auth-client-ip'].points,
          seconds: LIMITS['client-auth-client-ip'].seconds,
        },
      ];
      const budget = { key: counterKey('token-requests', KEYS.client({ clientId })), points: requestPoints, seconds: LIMITS['token-requests'].seconds };
      // An address or client held out by its failures stays held out, right secret or not: else guessing would go on.
      const refused = await batch.proven(failures, budget).catch((error: unknown) => {
        throw refusal('token-requests', error);
      });
      if (refused) {
        const name = refused.index === 0 ? 'client-auth-ip' : refused.index === 1 ? 'client-auth-client-ip' : 'token-requests';
        onLimited(name);
        throw new RateLimited(name, refused.msBeforeNext);
      }
      return {
        leave: () => {},
        authenticated: async () => {},
        undecided: async () => {},
        failed: async () => {
          await batch.spend(failures);
        },
      };
    },
  };
}

/** An admitted client authentication: how its outcome is counted once known. */
export interface Admitted {
  authenticated(): Promise<void>;
  undecided(): Promise<void>;
  /** A failure the points taken at admission did not already count. */
  failed(): Promise<void>;
  leave(): void;
}

export type LoginLimits = ReturnType<typeof loginLimits>;
export type DeviceCodeLimits = ReturnType<typeof deviceCodeLimits>;
export type ClientAuthLimits = ReturnType<typeof clientAuthLimits>;

/** Redis when configured, counting in the database while Redis cannot answer; else the database. */
function counterBatch(store: LimitStore): CounterBatch {
  const database = databaseCounterBatch(store.db);
  return store.redis ? insuredCounterBatch(redisCounterBatch(store.redis.client, store.redis.prefix), database) : database;
}

/** Every limit's counters over one store; TOKEN_RATE_LIMIT_PER_MINUTE sets the request budget. */
export function createLimits(store: LimitStore, options: { tokenRequestsPerMinute: number; onRateLimited?: OnRateLimited | undefined }) {
  const onLimited = options.onRateLimited ?? (() => {});
  const of = <N extends LimitName>(name: N) => {
    const points = LIMITS[name].points;
    return counter(store, name, points === 'TOKEN_RATE_LIMIT_PER_MINUTE' ? options.tokenRequestsPerMinute : points, onLimited);
  };
  return {
    login: loginLimits(of('login-ip'), of('login-account')),
    deviceCodes: deviceCodeLimits(of('device-code-ip')),
    clientAuth: clientAuthLimits(counterBatch(store), options.tokenRequestsPerMinute, onLimited),
    signup: of('signup-ip'),
    verificationResend: of('verify-resend-ip'),
    resetRequests: of('reset-ip'),
    resetMails: of('reset-address'),
    emailChanges: of('email-change-user'),
  };
}

export type Limits = ReturnType<typeof createLimits>;

/** The table as docs/security.md shows it (a test keeps the two the same). */
export function limitsTable(): string {
  const duration = (seconds: number) => (seconds % 3600 === 0 ? `${seconds / 3600} h` : `${seconds / 60} min`);
  const rows = Object.entries(LIMITS).map(([name, limit]: [string, Limit]) =>
    [
      `\`${name}\``,
      limit.counts,
      KEY_NAMES[limit.key],
      typeof limit.points === 'number' ? String(limit.points) : `\`${limit.points}\``,
      duration(limit.seconds),
      limit.whenStoreFails === 'refuse' ? '503' : 'database while Redis is down, else 503',
      limit.onSuccess,
      limit.usedBy,
    ].join(' | '),
  );
  return [
    '| Limit | Counts | Key | Points | Window | Store down | On success | Used by |',
    '|---|---|---|---|---|---|---|---|',
    ...rows.map((row) => `| ${row} |`),
  ].join('\n');
}

const KEY_NAMES: Record<keyof typeof KEYS, string> = {
  ip: 'IP (IPv6 by /64)',
  account: 'email address (SHA-256)',
  'client+ip': 'client id + IP (IPv6 by /64)',
  client: 'client id',
  user: 'user',
};
