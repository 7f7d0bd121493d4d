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

// Saves a model in one round trip and one atomic step: its hash (payload) with the model's expiry
// (ttl 0: none), its grant's index when it has a grant, and its uid and userCode lookups.
// KEYS: the model's hash, then its grant's index when ARGV[3] is '1', then the lookups.
// ARGV: payload, ttl in seconds (0: none), '1' when KEYS[2] is a grant index, the id the lookups hold.
// The index lives at least as long as its longest-lived key: a plain EXPIRE on every add would
// shorten it when a short-lived model joins a long-lived grant, and revokeByGrantId would then miss
// the longer-lived keys.
const UPSERT = `
local ttl = tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'payload', ARGV[1])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) else redis.call('PERSIST', KEYS[1]) end
local lookups = 2
if ARGV[3] == '1' then
  lookups = 3
  redis.call('SADD', KEYS[2], KEYS[1])
  local left = redis.call('TTL', KEYS[2])
  if ttl <= 0 then
    redis.call('PERSIST', KEYS[2])
  elseif left >= 0 and left < ttl then
    redis.call('EXPIRE', KEYS[2], ttl)
  elseif left == -1 and redis.call('SCARD', KEYS[2]) == 1 then
    redis.call('EXPIRE', KEYS[2], ttl)
  end
end
for i = lookups, #KEYS do
  if ttl > 0 then redis.call('SET', KEYS[i], ARGV[4], 'EX', ttl) else redis.call('SET', KEYS[i], ARGV[4]) end
end
return 1`;

// Marks a stored model consumed unless it already is: 1 when this call consumed it, 0 when it was
// consumed before, -1 when there is nothing to consume.
const CONSUME = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('HSETNX', KEYS[1], 'consumed', ARGV[1])`;

/** The scripts as commands of the client: sent by their SHA1 once the connection has loaded them (ioredis). */
interface ScriptCommands {
  jobswipeModelUpsert(numberOfKeys: number, ...keysThenArgs: Array<string | number>): Promise<number>;
  jobswipeModelConsume(target: string, consumedAt: number): Promise<number>;
}

function withScripts(redis: Redis): Redis & ScriptCommands {
  const client = redis as Redis & Partial<ScriptCommands>;
  if (!client.jobswipeModelUpsert) redis.defineCommand('jobswipeModelUpsert', { lua: UPSERT });
  if (!client.jobswipeModelConsume) redis.defineCommand('jobswipeModelConsume', { lua: CONSUME, numberOfKeys: 1 });
  return client as Redis & ScriptCommands;
}

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
  const scripts = withScripts(redis);
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
      const keys = [target];
      const indexed = typeof payload.grantId === 'string';
      if (indexed) keys.push(grantKey(this.name, payload.grantId as string));
      // A credential is found by its value only: a lookup by another key would store the value.
      if (!CREDENTIAL_MODELS.has(this.name)) {
        if (typeof payload.uid === 'string') keys.push(uidKey(this.name, payload.uid));
        if (typeof payload.userCode === 'string') keys.push(userCodeKey(this.name, payload.userCode));
      }
      const payloadJson = JSON.stringify(withoutCredential(this.name, payload));
      await guard(scripts.jobswipeModelUpsert(keys.length, ...keys, payloadJson, ttl, indexed ? '1' : '0', id));
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
      const result = await guard(scripts.jobswipeModelConsume(target, Math.floor(Date.now() / 1000)));
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
