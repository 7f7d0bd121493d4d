import { CompiledQuery, sql, type Kysely } from 'kysely';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { clientCacheOf } from './client-cache.ts';
import { storedIdOf, withCredential, withoutCredential, CREDENTIAL_MODELS } from './credential-ids.ts';
import { unlessUnavailable } from './store-errors.ts';
import type { OidcTables } from './tables.ts';

/**
 * A second redemption of a code or refresh token lost the race to consume it. The provider answers
 * invalid_grant; `grantId` lets the caller revoke the grant, as it does for a sequential reuse.
 * `gone`: there was nothing left to consume (the provider had found it, and it was deleted since:
 * revoked with its grant, say); such a redemption must fail too, and there is no grant to name.
 */
export class AlreadyConsumedError extends errors.InvalidGrant {
  readonly grantId: string | undefined;
  readonly gone: boolean;

  constructor(model: string, grantId: string | undefined, gone = false) {
    super(gone ? `${model} no longer exists` : `${model} already consumed`);
    this.grantId = grantId;
    this.gone = gone;
  }
}

// Postgres text and jsonb cannot hold NUL. No identifier we issue contains one, so a lookup with it
// finds nothing, and a payload with one (junk request parameters) is refused as a bad request.
const hasNul = (value: string) => value.includes('\u0000');

/**
 * The lookups every token request makes, as constant statements: nothing is built per call but the
 * parameters (the same SQL the query builder would produce, one per column a model is found by).
 */
const FIND_BY = {
  id: 'select payload, consumed_at from oidc_models where model = $1 and id = $2 and (expires_at is null or expires_at > now())',
  uid: 'select payload, consumed_at from oidc_models where model = $1 and uid = $2 and (expires_at is null or expires_at > now())',
  user_code: 'select payload, consumed_at from oidc_models where model = $1 and user_code = $2 and (expires_at is null or expires_at > now())',
} as const;

/**
 * A refresh token and its grant in one statement: redeeming a refresh token reads both, one right
 * after the other (oidc-provider finds the token, then its grant), so the grant comes along.
 */
const FIND_REFRESH_TOKEN_WITH_GRANT = `
  select t.payload, t.consumed_at, g.id as grant_row_id, g.payload as grant_payload, g.consumed_at as grant_consumed_at
  from oidc_models t
  left join oidc_models g on g.model = 'Grant' and g.id = t.grant_id and (g.expires_at is null or g.expires_at > now())
  where t.model = 'RefreshToken' and t.id = $1 and (t.expires_at is null or t.expires_at > now())`;

/**
 * A save and a rotation as constant statements too. Parameters: $1 model, $2 id, $3 payload (JSON
 * text), $4 seconds to expiry (null: none); the rotation's $5 is the stored id of the token it uses.
 */
const EXPIRES_AT = 'case when $4::float8 is null then null::timestamptz else now() + make_interval(secs => $4::float8) end';
const UPSERT = `
  insert into oidc_models (model, id, payload, expires_at, consumed_at)
  values ($1, $2, $3::jsonb, ${EXPIRES_AT}, null)
  on conflict (model, id) do update set payload = excluded.payload, expires_at = excluded.expires_at`;
/** Consumes the used token and inserts its successor, both or neither: nothing is returned when the used token was not unused. */
const ROTATE = `
  with used as (
    update oidc_models set consumed_at = now() where model = $1 and id = $5 and consumed_at is null returning id
  )
  insert into oidc_models (model, id, payload, expires_at, consumed_at)
  select $1::text, $2::text, $3::jsonb, ${EXPIRES_AT}, null::timestamptz from used
  on conflict (model, id) do update set payload = excluded.payload, expires_at = excluded.expires_at
  returning id`;

/** How long a grant read along with its refresh token answers the grant's own lookup (once). */
const PREFETCH_MS = 1_000;
const MAX_PREFETCHED = 10_000;

interface Prefetched {
  payload: AdapterPayload;
  at: number;
}

/** A payload as oidc-provider expects it: `consumed` (seconds) when the row was consumed. */
const withConsumed = (payload: AdapterPayload, consumedAt: Date | null): AdapterPayload =>
  consumedAt ? { ...payload, consumed: Math.floor(consumedAt.getTime() / 1000) } : payload;

/** Seals and opens sensitive values inside payloads; the server and the CLI build one on the keystore's KEK. */
export interface ValueCipher {
  seal(plaintext: string, context: string): Promise<string>;
  open(sealed: string, context: string): Promise<string>;
}

export interface OidcAdapterOptions {
  /** Client secrets are stored sealed (`client_secret_sealed`); without a cipher, a Client with a secret is refused. */
  secrets?: ValueCipher | undefined;
}

/** Where a client's sealed secret is bound: a sealed secret copied to another client does not open. */
export const clientSecretContext = (clientId: string) => `client_secret:${clientId}`;

async function sealClientSecret(id: string, payload: AdapterPayload, cipher: ValueCipher | undefined): Promise<AdapterPayload> {
  const { client_secret: secret, ...rest } = payload as AdapterPayload & { client_secret?: unknown };
  if (typeof secret !== 'string') return payload;
  if (!cipher) throw new Error(`client ${id}: client secrets are stored sealed, and this store was opened without the key to seal them`);
  return { ...rest, client_secret_sealed: await cipher.seal(secret, clientSecretContext(id)) };
}

async function openClientSecret(id: string, payload: AdapterPayload, cipher: ValueCipher | undefined): Promise<AdapterPayload> {
  const { client_secret_sealed: sealed, ...rest } = payload as AdapterPayload & { client_secret_sealed?: unknown };
  if (typeof sealed !== 'string') return payload;
  if (!cipher) throw new Error(`client ${id}: its secret is sealed, and this store was opened without the key to open it`);
  return { ...rest, client_secret: await cipher.open(sealed, clientSecretContext(id)) };
}

/**
 * oidc-provider's storage contract over one generic table. Expiry is computed and compared with the
 * database clock, so processes with skewed clocks agree on what has expired. Codes and tokens are
 * stored under a hash of their value (credential-ids.ts).
 */
export function createOidcAdapter(db: Kysely<OidcTables>, options: OidcAdapterOptions = {}): new (name: string) => Adapter {
  // Shared by every adapter over this database handle; it keeps nothing until the server listens for changes.
  const clientCache = clientCacheOf(db);
  /**
   * Grants read along with a refresh token, by id, for the Grant lookup that follows in the same
   * request: taken once, within PREFETCH_MS, and dropped when this process changes or revokes the
   * grant. (The rotation that follows consumes the token in one statement, and fails if the grant
   * was revoked meanwhile elsewhere: its tokens go with it.)
   */
  const prefetchedGrants = new Map<string, Prefetched>();
  const forgetGrant = (grantId: string) => prefetchedGrants.delete(grantId);
  return class OidcModelAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    /** The row to store: the payload as JSON (a client's secret sealed) and its expiry on the database's clock. */
    async #row(id: string, payload: AdapterPayload, expiresIn: number) {
      // 0 or no value: no expiry. A negative value (oidc-provider saves with exp - now) is already expired.
      const seconds = Number.isFinite(expiresIn) && expiresIn !== 0 ? expiresIn : null;
      if (hasNul(id) || JSON.stringify(payload).includes('\\u0000')) {
        throw new errors.InvalidRequest('request parameters must not contain NUL characters');
      }
      const stored = withoutCredential(this.name, payload);
      const json = JSON.stringify(this.name === 'Client' ? await sealClientSecret(id, stored, options.secrets) : stored);
      return { id: storedIdOf(this.name, id), json, expiresIn: seconds };
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      const row = await this.#row(id, payload, expiresIn);
      await unlessUnavailable(db.executeQuery(CompiledQuery.raw(UPSERT, [this.name, row.id, row.json, row.expiresIn])));
      if (this.name === 'Client') clientCache.changed(id);
      if (this.name === 'Grant') forgetGrant(id);
    }

    /**
     * A rotation in one statement: consumes `usedValue` and stores its successor `id`, both or
     * neither, so a rotation cut short (the process killed, the database gone) leaves the used token
     * redeemable rather than used with no successor. Only one of any number of concurrent rotations
     * of the same token succeeds; the others, and a rotation of a token that is not there (any more),
     * get AlreadyConsumedError and store nothing.
     */
    async rotate(usedValue: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      if (hasNul(usedValue)) throw new AlreadyConsumedError(this.name, undefined, true);
      const used = storedIdOf(this.name, usedValue);
      const row = await this.#row(id, payload, expiresIn);
      const stored = await unlessUnavailable(db.executeQuery(CompiledQuery.raw(ROTATE, [this.name, row.id, row.json, row.expiresIn, used])));
      if (stored.rows.length === 0) throw await this.#notConsumed(used);
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      const cache = this.name === 'Client' ? clientCache : undefined;
      const kept = cache?.get(id);
      if (kept) return kept;
      if (this.name === 'RefreshToken') return this.#findRefreshToken(id);
      if (this.name === 'Grant') {
        const prefetched = prefetchedGrants.get(id);
        if (prefetched) {
          forgetGrant(id);
          if (performance.now() - prefetched.at < PREFETCH_MS) return prefetched.payload;
        }
      }
      const generation = cache?.generation();
      const payload = await this.#findWhere('id', storedIdOf(this.name, id));
      if (cache && payload && generation !== undefined) cache.keep(id, payload, generation);
      return payload && withCredential(this.name, id, payload);
    }

    async #findRefreshToken(value: string): Promise<AdapterPayload | undefined> {
      if (hasNul(value)) return undefined;
      const { rows } = await unlessUnavailable(
        db.executeQuery<{ payload: unknown; consumed_at: Date | null; grant_row_id: string | null; grant_payload: unknown; grant_consumed_at: Date | null }>(
          CompiledQuery.raw(FIND_REFRESH_TOKEN_WITH_GRANT, [storedIdOf(this.name, value)]),
        ),
      );
      const row = rows[0];
      if (!row) return undefined;
      if (row.grant_row_id !== null) {
        if (prefetchedGrants.size >= MAX_PREFETCHED) prefetchedGrants.clear();
        prefetchedGrants.set(row.grant_row_id, { payload: withConsumed(row.grant_payload as AdapterPayload, row.grant_consumed_at), at: performance.now() });
      }
      return withCredential(this.name, value, withConsumed(row.payload as AdapterPayload, row.consumed_at));
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return this.#findWhere('uid', uid);
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      return this.#findWhere('user_code', userCode);
    }

    async #findWhere(column: 'id' | 'uid' | 'user_code', value: string): Promise<AdapterPayload | undefined> {
      if (hasNul(value)) return undefined;
      // A credential is found by its value only: a lookup by another key could not give the value back.
      if (column !== 'id' && CREDENTIAL_MODELS.has(this.name)) return undefined;
      const { rows } = await unlessUnavailable(
        db.executeQuery<{ payload: unknown; consumed_at: Date | null }>(CompiledQuery.raw(FIND_BY[column], [this.name, value])),
      );
      const row = rows[0];
      if (!row) return undefined;
      let payload = row.payload as AdapterPayload;
      if (this.name === 'Client') payload = await openClientSecret(String(payload['client_id'] ?? value), payload, options.secrets);
      return withConsumed(payload, row.consumed_at);
    }

    /**
     * Marks the row consumed; only one of any number of concurrent callers succeeds. The others, and
     * a consume of a row that is not there (any more), get AlreadyConsumedError.
     */
    async consume(value: string): Promise<void> {
      if (hasNul(value)) throw new AlreadyConsumedError(this.name, undefined, true);
      if (this.name === 'Grant') forgetGrant(value);
      const id = storedIdOf(this.name, value);
      const updated = await unlessUnavailable(db
        .updateTable('oidc_models')
        .set({ consumed_at: sql<Date>`now()` })
        .where('model', '=', this.name)
        .where('id', '=', id)
        .where('consumed_at', 'is', null)
        .returning('id')
        .executeTakeFirst());
      if (updated) return;
      throw await this.#notConsumed(id);
    }

    /** Why a consume of the stored id `id` found nothing to consume: used before, or gone. */
    async #notConsumed(id: string): Promise<AlreadyConsumedError> {
      const existing = await unlessUnavailable(db
        .selectFrom('oidc_models')
        .select('grant_id')
        .where('model', '=', this.name)
        .where('id', '=', id)
        .executeTakeFirst());
      return existing ? new AlreadyConsumedError(this.name, existing.grant_id ?? undefined) : new AlreadyConsumedError(this.name, undefined, true);
    }

    async destroy(id: string): Promise<void> {
      if (hasNul(id)) return;
      await unlessUnavailable(db.deleteFrom('oidc_models').where('model', '=', this.name).where('id', '=', storedIdOf(this.name, id)).execute());
      if (this.name === 'Client') clientCache.changed(id);
      if (this.name === 'Grant') forgetGrant(id);
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      if (hasNul(grantId)) return;
      forgetGrant(grantId);
      await unlessUnavailable(db.deleteFrom('oidc_models').where('model', '=', this.name).where('grant_id', '=', grantId).execute());
    }
  };
}

/** Deletes expired rows in batches; returns how many were removed. */
export async function sweepExpired(db: Kysely<OidcTables>, batchSize = 1_000): Promise<number> {
  let removed = 0;
  for (;;) {
    const result = await db
      .deleteFrom('oidc_models')
      .where(({ eb, selectFrom }) =>
        eb(
          sql.raw('(model, id)'),
          'in',
          selectFrom('oidc_models')
            .select(['model', 'id'])
            .where('expires_at', '<=', sql<Date>`now()`)
            .limit(batchSize),
        ),
      )
      .executeTakeFirst();
    const count = Number(result.numDeletedRows);
    removed += count;
    if (count < batchSize) return removed;
  }
}
