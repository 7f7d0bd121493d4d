import { createRequire } from 'node:module';
import { sql, type Kysely } from 'kysely';
import { RateLimiterRes, type IRateLimiterStoreOptions, type RateLimiterStoreAbstract as StoreAbstract } from 'rate-limiter-flexible';

export interface RateLimitTables {
  rate_limits: { key: string; points: number | string; expire: number | string | null };
}

// The package declares this base class in its types but does not re-export it from its entry point.
const require = createRequire(import.meta.url);
const RateLimiterStoreAbstract = require('rate-limiter-flexible/lib/RateLimiterStoreAbstract.js') as typeof StoreAbstract;

interface Row {
  points: number | string;
  expire: number | string | null;
}

/**
 * Limit counters in our own database (PGlite or Postgres, through kysely), for deployments without
 * Redis and while Redis is down: rate-limiter-flexible's store contract over the `rate_limits` table.
 * The upsert is one atomic statement, like the package's Postgres store.
 */
export class DatabaseCounters extends RateLimiterStoreAbstract {
  readonly #db: Kysely<RateLimitTables>;

  constructor(options: Omit<IRateLimiterStoreOptions, 'storeClient'> & { db: Kysely<RateLimitTables> }) {
    const { db, ...rest } = options;
    super({ ...rest, storeClient: db });
    this.#db = db;
  }

  async _upsert(key: string, points: number, msDuration: number, forceExpire = false): Promise<Row> {
    const now = Date.now();
    const expire = msDuration > 0 ? now + msDuration : null;
    const restart = forceExpire ? sql<boolean>`true` : sql<boolean>`rate_limits.expire <= ${now}`;
    // A point given back (negative) after its window ended must not start the next one in credit.
    const fresh = Math.max(points, 0);
    const row = await this.#db
      .insertInto('rate_limits')
      .values({ key, points: fresh, expire })
      .onConflict((conflict) =>
        conflict.column('key').doUpdateSet({
          points: sql`CASE WHEN ${restart} THEN ${fresh} ELSE GREATEST(rate_limits.points + ${points}, 0) END`,
          expire: forceExpire ? expire : sql`CASE WHEN rate_limits.expire <= ${now} THEN ${expire}::bigint ELSE rate_limits.expire END`,
        }),
      )
      .returning(['points', 'expire'])
      .executeTakeFirstOrThrow();
    return row;
  }

  async _get(key: string): Promise<Row | null> {
    const row = await this.#db
      .selectFrom('rate_limits')
      .select(['points', 'expire'])
      .where('key', '=', key)
      .where((eb) => eb.or([eb('expire', 'is', null), eb('expire', '>', Date.now())]))
      .executeTakeFirst();
    return row ?? null;
  }

  async _delete(key: string): Promise<boolean> {
    const result = await this.#db.deleteFrom('rate_limits').where('key', '=', key).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  _getRateLimiterRes(_key: string, changedPoints: number, row: Row): RateLimiterRes {
    const points = Number(row.points);
    const isFirstInDuration = changedPoints === points;
    const consumed = isFirstInDuration ? changedPoints : points;
    const expire = row.expire === null ? null : Number(row.expire);
    return new RateLimiterRes(Math.max(this.points - consumed, 0), expire === null ? -1 : Math.max(expire - Date.now(), 0), consumed, isFirstInDuration);
  }

  /** Deletes windows that ended; run by the sweeper. */
  static async sweep(db: Kysely<RateLimitTables>): Promise<number> {
    const result = await db.deleteFrom('rate_limits').where('expire', '<=', Date.now()).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
