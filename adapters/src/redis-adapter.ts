import type { Redis } from 'ioredis';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { CREDENTIAL_MODELS, storedIdOf, withCredential, withoutCredential } from './credential-ids.ts';
import { AlreadyConsumedError } from './oidc-adapter.ts';
import { StoreUnavailableError } from './store-errors.ts';

export { StoreUnavailableError };

/** The short-lived, hot models that live in Redis when it is configured. */
/**
 * A rotated refresh token's answer, kept sealed for the reuse grace period so that a replay of that
 * token gets the same tokens again; stored under a hash of the rotated token (idp's refresh-replay.ts).
 */
export const REFRESH_REPLAY_MODEL = 'RefreshTokenReplay';

/**
 * The models that live in Redis when it is configured: sessions and interactions, codes, PAR and
 * CIBA requests, device codes, replay detection. Grants, refresh tokens and clients stay in the
 * database: losing them would sign users out. See also REDIS_PREFERRED_MODELS (storage.ts).
 */
export const REDIS_MODELS = new Set([
  'Session',
  'Interaction',
  'AuthorizationCode',
  'ReplayDetection',
  'PushedAuthorizationRequest',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

// Adds a key to a grant's index and makes the index live at least as long as that key. A plain
// EXPIRE on every add would shorten the index when a short-lived model joins a long-lived grant,
// and revokeByGrantId would then miss the longer-lived keys.
const INDEX_ADD = `
redis.call('SADD', KEYS[1], ARGV[1])
local wanted = tonumber(ARGV[2])
local ttl = redis.call('TTL', KEYS[1])
if wanted <= 0 then
  redis.call('PERSIST', KEYS[1])
elseif ttl >= 0 and ttl < wanted then
  redis.call('EXPIRE', KEYS[1], wanted)
elseif ttl == -1 and redis.call('SCARD', KEYS[1]) == 1 then
  redis.call('EXPIRE', KEYS[1], wanted)
end
return 1`;

// Marks a stored model consumed unless it already is: 1 when this call consumed it, 0 when it was
// consumed before, -1 when there is nothing to consume.
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1])`;

/** Any failure of Redis itself (a reply error included) is the store being unavailable: 503, never 500. */
async function guard<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    if (error instanceof errors.OIDCProviderError) throw error;
    throw new StoreUnavailableError(error);
  }
}

/**
 * oidc-provider's storage contract over Redis: each model is a hash (payload, consumed) with the
 * model's expiry as its TTL; uid and userCode lookups and per-grant sets are kept beside it. Codes
 * and tokens are keyed by a hash of their value (credential-ids.ts).
 */
export function createRedisAdapter(redis: Redis, prefix: string): new (name: string) => Adapter {
  const key = (model: string, id: string) => `${prefix}${model}:${storedIdOf(model, id)}`;
  const grantKey = (model: string, grantId: string) => `${prefix}${model}:grant:${grantId}`;
  const uidKey = (model: string, uid: string) => `${prefix}${model}:uid:${uid}`;
  const userCodeKey = (model: string, userCode: string) => `${prefix}${model}:userCode:${userCode}`;

  return class RedisModelAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const target = key(this.name, id);
      if (expiresIn < 0) {
        // Saved already past its expiry (oidc-provider saves with exp - now): nothing to keep.
        await guard(redis.del(target));
        return;
      }
      const ttl = Number.isFinite(expiresIn) ? Math.ceil(expiresIn) : 0;
      const multi = redis.multi().hset(target, 'payload', JSON.stringify(withoutCredential(this.name, payload)));
      if (ttl > 0) multi.expire(target, ttl);
      else multi.persist(target);
      if (typeof payload.grantId === 'string') multi.eval(INDEX_ADD, 1, grantKey(this.name, payload.grantId), target, ttl);
      const lookups = [
        typeof payload.uid === 'string' ? uidKey(this.name, payload.uid) : undefined,
        typeof payload.userCode === 'string' ? userCodeKey(this.name, payload.userCode) : undefined,
      ];
      // A credential is found by its value only: a lookup by another key would store the value.
      for (const lookup of CREDENTIAL_MODELS.has(this.name) ? [] : lookups) {
        if (lookup && ttl > 0) multi.set(lookup, id, 'EX', ttl);
        else if (lookup) multi.set(lookup, id);
      }
      const results = await guard(multi.exec());
      const failed = results?.find(([error]) => error);
      if (failed?.[0]) throw new StoreUnavailableError(failed[0]);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const stored = await guard(redis.hgetall(key(this.name, id)));
      if (!stored['payload']) return undefined;
      const payload = withCredential(this.name, id, JSON.parse(stored['payload']) as AdapterPayload);
      return stored['consumed'] ? { ...payload, consumed: Number(stored['consumed']) } : payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const id = await guard(redis.get(uidKey(this.name, uid)));
      return id ? this.find(id) : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const id = await guard(redis.get(userCodeKey(this.name, userCode)));
      return id ? this.find(id) : undefined;
    }

    /**
     * Only one of any number of concurrent callers consumes; the others, and a consume of a key that
     * is not there (any more), get AlreadyConsumedError.
     */
    async consume(id: string): Promise<void> {
      const target = key(this.name, id);
      const result = await guard(redis.eval(CONSUME, 1, target, Math.floor(Date.now() / 1000)));
      if (result === 1) return;
      if (result === -1) throw new AlreadyConsumedError(this.name, undefined, true);
      const stored = await guard(redis.hget(target, 'payload'));
      const grantId = stored ? (JSON.parse(stored) as AdapterPayload).grantId : undefined;
      throw new AlreadyConsumedError(this.name, typeof grantId === 'string' ? grantId : undefined);
    }

    async destroy(id: string): Promise<void> {
      await guard(redis.del(key(this.name, id)));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const index = grantKey(this.name, grantId);
      const members = await guard(redis.smembers(index));
      await guard(redis.del(index, ...members));
    }
  };
}
