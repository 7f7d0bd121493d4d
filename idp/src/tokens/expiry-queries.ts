import { sql, type Kysely } from 'kysely';
import type { OidcTables } from '@jobswipe/adapters';
import type { SessionTables } from '../sessions/tables.ts';

/** The refresh tokens of one client that expire within a window. */
export interface ExpiringRefreshTokens {
  clientId: string;
  count: number;
  earliest: Date;
}

const within = (seconds: number) => sql<Date>`now() + make_interval(secs => ${seconds})`;

/**
 * Reads what expires, for `idp tokens expiring` and the monitoring gauges. Live means not expired
 * and, for a refresh token, not consumed (a rotated token lives on only for the reuse check).
 * Times are compared on the database clock, as the adapter stores them.
 */
export function createExpiryQueries(db: Kysely<OidcTables & SessionTables>) {
  const liveRefreshTokens = (seconds: number) =>
    db
      .selectFrom('oidc_models')
      .where('model', '=', 'RefreshToken')
      .where('consumed_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .where('expires_at', '<=', within(seconds));

  return {
    /** Per client, the live refresh tokens expiring within `seconds` and the earliest expiry; by client id. */
    async refreshTokensByClient(seconds: number): Promise<ExpiringRefreshTokens[]> {
      const clientId = sql<string>`payload ->> 'clientId'`;
      const rows = await liveRefreshTokens(seconds)
        .select([clientId.as('client_id'), sql<string>`count(*)`.as('count'), sql<Date>`min(expires_at)`.as('earliest')])
        .groupBy(clientId)
        .orderBy(clientId)
        .execute();
      return rows.map((row) => ({ clientId: row.client_id, count: Number(row.count), earliest: new Date(row.earliest) }));
    },

    /** How many live refresh tokens expire within `seconds`, over every client. */
    async refreshTokenCount(seconds: number): Promise<number> {
      const row = await liveRefreshTokens(seconds).select(sql<string>`count(*)`.as('count')).executeTakeFirstOrThrow();
      return Number(row.count);
    },

    /**
     * Clients whose secret expires within `seconds` (RFC 7591 `client_secret_expires_at`, seconds since
     * the epoch; 0 or unset never expires), with that time; ones already expired are included.
     */
    async clientSecretsExpiring(seconds: number): Promise<Array<{ clientId: string; expiresAt: Date }>> {
      const expiresAt = sql<string>`(payload ->> 'client_secret_expires_at')::numeric`;
      const rows = await db
        .selectFrom('oidc_models')
        .select(['id', expiresAt.as('expires_at')])
        .where('model', '=', 'Client')
        .where(sql<boolean>`jsonb_typeof(payload -> 'client_secret_expires_at') = 'number'`)
        .where(expiresAt, '>', sql<string>`0`)
        .where(sql<Date>`to_timestamp(${expiresAt})`, '<=', within(seconds))
        .orderBy('id')
        .execute();
      return rows.map((row) => ({ clientId: row.id, expiresAt: new Date(Number(row.expires_at) * 1000) }));
    },

    /** Sessions not ended and not expired, over every user. */
    async activeSessionCount(): Promise<number> {
      const row = await db
        .selectFrom('user_sessions')
        .select(sql<string>`count(*)`.as('count'))
        .where('ended_at', 'is', null)
        .where('expires_at', '>', sql<Date>`now()`)
        .executeTakeFirstOrThrow();
      return Number(row.count);
    },
  };
}

export type ExpiryQueries = ReturnType<typeof createExpiryQueries>;
