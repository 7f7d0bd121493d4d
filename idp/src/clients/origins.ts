import type { OidcTables } from '@jobswipe/adapters';
import { sql, type Kysely } from 'kysely';

/**
 * The origin a browser would send for pages under this redirect URI; undefined for anything but
 * http(s). A custom-scheme or file: URI has the opaque origin "null", which any sandboxed frame or
 * local file also sends, so it must never match.
 */
export function webOriginOf(uri: string): string | undefined {
  const url = URL.parse(uri);
  return url && (url.protocol === 'https:' || url.protocol === 'http:') ? url.origin : undefined;
}

/**
 * Whether an Origin header is the origin of a redirect URI some registered client has. Read from the
 * clients table on each call (only cross-origin requests to the provider's JSON endpoints ask), so a
 * newly registered client is allowed at once and a removed one at once no longer is.
 */
export function registeredRedirectOrigins(db: Kysely<OidcTables>): (origin: string) => Promise<boolean> {
  return async (origin) => {
    if (webOriginOf(origin) !== origin) return false;
    const rows = await db
      .selectFrom('oidc_models')
      .select(sql<unknown>`payload -> 'redirect_uris'`.as('uris'))
      .where('model', '=', 'Client')
      .execute();
    return rows.some(({ uris }) => Array.isArray(uris) && uris.some((uri) => typeof uri === 'string' && webOriginOf(uri) === origin));
  };
}
