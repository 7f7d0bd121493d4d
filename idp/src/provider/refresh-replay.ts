import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AlreadyConsumedError, REFRESH_REPLAY_MODEL } from '@jobswipe/adapters';
import type { Aead } from '@jobswipe/keystore';
import Provider, {
  errors,
  type Adapter,
  type AdapterPayload,
  type CanBePromise,
  type KoaContextWithOIDC,
  type TokenEndpointGrantContext,
  type UnknownObject,
} from 'oidc-provider';
import { requestScope } from '../http/request-scope.ts';

/*
 * The reuse grace period of rotating refresh tokens (docs/sessions.md).
 *
 * oidc-provider rotates a refresh token on every use and, when a used one comes back, revokes the
 * grant. A legitimate client does present one twice: a retry after a lost response, two tabs or two
 * instances of the web app refreshing at once. For REFRESH_TOKEN_REUSE_GRACE_SECONDS after a
 * rotation, the client that rotated the token gets the same answer again (the same refresh, access
 * and ID tokens), and the grant lives on.
 *
 * How, without a lock on the request path:
 * - The provider's refresh_token grant handler is wrapped where it is registered (the provider
 *   registers its built-in grants through registerGrantType; a subclass wraps that one).
 * - The first redemption runs the provider's handler; its answer is sealed (AES-256-GCM under a key
 *   derived from the column data key: keystore/src/aead.ts) and stored under a hash of the rotated
 *   token, with the grace period as its lifetime, where every process finds it (Redis, or the
 *   database while Redis is away or not configured), before the response goes out.
 * - A second redemption must not take the provider's own "already used" path, which revokes the
 *   grant at once: while our handler runs, the provider's view of that token hides that it was used,
 *   so the handler goes on to the adapter's atomic consume, which refuses every redemption but the
 *   first with AlreadyConsumedError. Such a loser is then answered from the stored answer (waiting up
 *   to REPLAY_WAIT_MS for it when the winner, maybe another process, is still issuing) if it may have
 *   it (replay below), or the error stands and the grant is revoked as for any reuse (server.ts).
 *   Everything the handler checks before it consumes (client, expiry, grant, account, scope) is
 *   checked for a repeat too, so a repeat is refused where any other request would be.
 * - Requests of one process for the same token and client share one redemption (single flight).
 */

/** How long a redemption that lost the race waits for the winner's answer (the winner is issuing tokens). */
export const REPLAY_WAIT_MS = 2_000;

type AdapterClass = new (name: string) => Adapter;

/** The database adapter's rotation: consume one token and save its successor in one statement. */
interface RotatingAdapter {
  rotate(usedValue: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void>;
}
type GrantHandler = Parameters<Provider['registerGrantType']>[1];
type GrantContext = Parameters<GrantHandler>[0];
type GrantNames = Parameters<Provider['registerGrantType']>[2];

export interface RefreshReplayOptions {
  /** REFRESH_TOKEN_REUSE_GRACE_SECONDS; positive (0 means no replay: do not create one). */
  graceSeconds: number;
  /** The storage adapter every process shares: where answers are kept. */
  adapter: AdapterClass;
  /** Seals the kept answers (they hold tokens): synchronously, as it runs on every refresh. */
  secrets: Aead;
  /**
   * Opens an answer kept by a server of the earlier release, which sealed it as a JWE with the column
   * cipher: during a rolling upgrade, a replay of a rotation an older server answered is still one.
   */
  openEarlier?: (sealed: string, context: string) => Promise<string>;
  /** A kept answer could not be stored or opened: the request still gets its answer or the usual refusal. */
  onError(error: unknown, message: string): void;
  waitMs?: number;
}

export interface RefreshReplay {
  /** The provider class to instantiate: its refresh_token grant replays within the grace period. */
  Provider: typeof Provider;
  /** The adapter to configure that provider with (the storage adapter, aware of redemptions under way). */
  adapter: AdapterClass;
}

/** What is stored, in the clear: enough to refuse another client without opening anything. */
interface StoredAnswer {
  clientId: string;
  grantId: string;
  sealed: string;
}

/** What is sealed: the answer as it went out, and the request it answered. */
interface SealedAnswer {
  body: Record<string, unknown> & { refresh_token: string };
  accessTokenExpiresAt: number;
  request: RequestShape;
}

/** The parameters that shape a refresh's answer: a replay must repeat them. */
interface RequestShape {
  scope: unknown;
  resource: unknown;
}

/** A redemption under way in this async context: the token it redeems, and when that token was used if it was. */
interface Redemption {
  token: string;
  consumedAt?: number;
  /** The handler consumed the token: the adapter does it with the successor's save, in one statement. */
  rotating?: boolean;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Where an answer is stored: a hash of the rotated refresh token, never the token. */
export function answerKey(refreshToken: string): string {
  return createHash('sha256').update('refresh answer\0').update(refreshToken, 'utf8').digest('base64url');
}

/** What a kept answer is sealed for (the additional authenticated data): where it is stored. */
export const sealContext = (key: string) => `refresh answer ${key}`;
/** A compact JWE's protected header, base64url of `{"`: how the earlier release's sealed answers begin. */
const JWE_PREFIX = 'eyJ';

function requestShape(ctx: KoaContextWithOIDC): RequestShape {
  const params = ctx.oidc.params ?? {};
  return { scope: params['scope'] ?? null, resource: params['resource'] ?? null };
}

function isStoredAnswer(payload: AdapterPayload | undefined): payload is AdapterPayload & StoredAnswer {
  return typeof payload?.['clientId'] === 'string' && typeof payload['grantId'] === 'string' && typeof payload['sealed'] === 'string';
}

export function createRefreshReplay(options: RefreshReplayOptions): RefreshReplay {
  if (!(options.graceSeconds > 0)) throw new Error('a refresh replay needs a positive grace period');
  const waitMs = options.waitMs ?? REPLAY_WAIT_MS;
  const redemptions = new AsyncLocalStorage<Redemption>();
  const flights = new Map<string, Promise<StoredAnswer | undefined>>();
  const answers = () => new options.adapter(REFRESH_REPLAY_MODEL);

  async function findAnswer(key: string): Promise<StoredAnswer | undefined> {
    const payload = (await answers().find(key)) ?? undefined;
    return isStoredAnswer(payload) ? payload : undefined;
  }

  async function waitForAnswer(key: string): Promise<StoredAnswer | undefined> {
    const deadline = Date.now() + waitMs;
    for (let pause = 10; ; pause = Math.min(pause * 2, 160)) {
      const found = await findAnswer(key);
      const left = deadline - Date.now();
      if (found || left <= 0) return found;
      await sleep(Math.min(pause, left));
    }
  }

  /**
   * Keeps the answer the provider just gave for the grace period, and returns it for the requests of
   * this process that wait on the same redemption (they get it even if storing it failed).
   */
  async function remember(ctx: KoaContextWithOIDC, key: string): Promise<StoredAnswer | undefined> {
    const { entities, client } = ctx.oidc;
    const body = ctx.body as Record<string, unknown> | undefined;
    const [rotated, successor] = [entities.RotatedRefreshToken, entities.RefreshToken];
    if (!rotated || !successor?.grantId || !client || typeof body?.['refresh_token'] !== 'string') return undefined;
    // Sender-constrained tokens (a public client's DPoP-bound ones; mTLS is not enabled) would need their proof
    // checked again on a replay: not kept, so their reuse is a reuse (docs/conformance.md).
    if (rotated.jkt || rotated['x5t#S256']) return undefined;
    const answer: SealedAnswer = {
      body: body as SealedAnswer['body'],
      accessTokenExpiresAt: nowSeconds() + Number(body['expires_in'] ?? 0),
      request: requestShape(ctx),
    };
    // The client has its tokens; if the answer cannot be kept, only a replay of this rotation from
    // another process or later will not be recognised.
    const failed = (error: unknown) => options.onError(error, 'the answer to a refresh could not be kept for its grace period');
    let stored: StoredAnswer;
    try {
      stored = { clientId: client.clientId, grantId: successor.grantId, sealed: options.secrets.seal(JSON.stringify(answer), sealContext(key)) };
    } catch (error) {
      failed(error);
      return undefined;
    }
    // Stored while the audit event is written: the response waits for both (server.ts).
    (requestScope(ctx.req).pendingWrites ??= []).push(answers().upsert(key, { ...stored }, options.graceSeconds).catch(failed));
    return stored;
  }

  /**
   * Answers with a kept answer when this request may have it again: same client, same parameters, the
   * grant alive and the successor refresh token unused. False otherwise: the request is then a reuse.
   */
  async function replay(ctx: KoaContextWithOIDC, key: string, stored: StoredAnswer): Promise<boolean> {
    const { client, provider } = ctx.oidc;
    if (!client || stored.clientId !== client.clientId) return false;
    let answer: SealedAnswer;
    try {
      const text =
        options.openEarlier && stored.sealed.startsWith(JWE_PREFIX) ? await options.openEarlier(stored.sealed, sealContext(key)) : options.secrets.open(stored.sealed, sealContext(key));
      answer = JSON.parse(text) as SealedAnswer;
    } catch (error) {
      options.onError(error, 'a kept refresh answer could not be opened');
      return false;
    }
    if (JSON.stringify(answer.request) !== JSON.stringify(requestShape(ctx))) return false;
    const grant = await provider.Grant.find(stored.grantId, { ignoreExpiration: true });
    if (!grant || grant.isExpired || grant.clientId !== client.clientId) return false;
    const successor = await provider.RefreshToken.find(answer.body.refresh_token, { ignoreExpiration: true });
    // Gone (revoked with its grant or its session) or used: the chain moved on, and this is a reuse.
    if (!successor || successor.consumed || successor.grantId !== stored.grantId) return false;
    // Its successor can no longer be redeemed either: refused, and nothing left to protect by revoking.
    if (successor.isExpired) throw new errors.InvalidGrant('refresh token is expired');
    ctx.body = { ...answer.body, expires_in: Math.max(0, answer.accessTokenExpiresAt - nowSeconds()) };
    requestScope(ctx.req).refreshReplayed = {
      grantId: stored.grantId,
      userId: successor.accountId,
      sessionId: successor.sessionUid,
      scope: typeof answer.body['scope'] === 'string' ? answer.body['scope'] : undefined,
    };
    return true;
  }

  /**
   * One redemption: the provider's handler, and on a lost race or a repeat, the kept answer. Returns
   * the answer given, for the requests of this process waiting on this redemption.
   */
  async function redeem(ctx: GrantContext, handler: GrantHandler, token: string, key: string): Promise<StoredAnswer | undefined> {
    const redemption: Redemption = { token };
    try {
      await redemptions.run(redemption, async () => handler(ctx));
      // Consumed without a successor saved (not the provider's rotation): consume it on its own.
      if (redemption.rotating) await new options.adapter('RefreshToken').consume(token);
    } catch (error) {
      // Gone since the provider found it (revoked with its grant): nothing to replay.
      if (!(error instanceof AlreadyConsumedError) || error.gone) throw error;
      // Used before this request, longer ago than the grace period: its answer is expired, or there is
      // none to wait for. (The answer's own expiry, on the database's clock, decides: one look.)
      const usedLongAgo = redemption.consumedAt !== undefined && nowSeconds() - redemption.consumedAt > options.graceSeconds + 1;
      const stored = usedLongAgo ? await findAnswer(key) : await waitForAnswer(key);
      if (stored && (await replay(ctx, key, stored))) return stored;
      throw error;
    }
    return remember(ctx, key);
  }

  function wrap(handler: GrantHandler): GrantHandler {
    return async (ctx) => {
      const token = ctx.oidc.params.refresh_token;
      if (typeof token !== 'string' || token === '') return handler(ctx);
      const key = answerKey(token);
      const flightKey = `${ctx.oidc.client.clientId}\0${key}`;
      const running = flights.get(flightKey);
      if (running) {
        // Another request of this process is redeeming the same token for the same client: its answer.
        const stored = (await running.catch(() => undefined)) ?? (await findAnswer(key));
        if (stored && (await replay(ctx, key, stored))) return;
        await redeem(ctx, handler, token, key);
        return;
      }
      const flight = redeem(ctx, handler, token, key);
      flights.set(flightKey, flight);
      try {
        await flight;
      } finally {
        if (flights.get(flightKey) === flight) flights.delete(flightKey);
      }
    };
  }

  /**
   * The storage adapter, except for the refresh token our handler redeems:
   * - it is seen unused, so that a second redemption reaches the atomic consume instead of the
   *   provider's revocation;
   * - consuming it waits for the successor's save, and the two are one statement (the adapter's
   *   `rotate`): a rotation cut short leaves the token redeemable, never used without a successor.
   */
  function redemptionAware(Base: AdapterClass): AdapterClass {
    function RedemptionAwareAdapter(name: string): Adapter {
      const inner = new Base(name) as Adapter & Partial<RotatingAdapter>;
      if (name !== 'RefreshToken') return inner;
      return {
        upsert(id, payload, expiresIn) {
          const redemption = redemptions.getStore();
          if (!redemption?.rotating) return inner.upsert(id, payload, expiresIn);
          redemption.rotating = false;
          if (inner.rotate) return inner.rotate(redemption.token, id, payload, expiresIn ?? 0);
          return inner.consume(redemption.token).then(() => inner.upsert(id, payload, expiresIn));
        },
        async find(id) {
          const payload = await inner.find(id);
          const redemption = redemptions.getStore();
          if (!payload || redemption?.token !== id || payload.consumed === undefined) return payload;
          redemption.consumedAt = typeof payload.consumed === 'number' ? payload.consumed : nowSeconds();
          const { consumed: _used, ...unused } = payload;
          return unused;
        },
        findByUserCode: (userCode) => inner.findByUserCode(userCode),
        findByUid: (uid) => inner.findByUid(uid),
        consume(id) {
          const redemption = redemptions.getStore();
          if (redemption?.token !== id || redemption.rotating !== undefined) return inner.consume(id);
          redemption.rotating = true;
          return Promise.resolve();
        },
        destroy: (id) => inner.destroy(id),
        revokeByGrantId: (grantId) => inner.revokeByGrantId(grantId),
      };
    }
    return RedemptionAwareAdapter as unknown as AdapterClass;
  }

  const installed = new WeakSet<object>();
  class RefreshReplayingProvider extends Provider {
    constructor(...args: ConstructorParameters<typeof Provider>) {
      super(...args);
      // The provider registers its built-in grants from its constructor: fail at start, not silently.
      if (!installed.has(this)) throw new Error('the refresh_token grant was not registered through registerGrantType: the reuse grace period cannot work');
    }

    override registerGrantType<Params extends object = UnknownObject>(
      name: string,
      handler: (ctx: TokenEndpointGrantContext<Params>) => CanBePromise<void>,
      params?: GrantNames,
      duplicates?: GrantNames,
    ): void {
      if (name !== 'refresh_token') return super.registerGrantType(name, handler, params, duplicates);
      installed.add(this);
      super.registerGrantType(name, wrap(handler as unknown as GrantHandler), params, duplicates);
    }
  }

  return { Provider: RefreshReplayingProvider, adapter: redemptionAware(options.adapter) };
}
