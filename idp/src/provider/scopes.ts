import type { Kysely } from 'kysely';
import type { OidcTables } from '@jobswipe/adapters';
import { CLAIM_SCOPES, OIDC_SCOPES, SERVICE_SCOPES } from './resource.ts';

const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/;

function scopesOf(metadata: Record<string, unknown> | undefined): string[] {
  const scope = metadata?.['scope'];
  return typeof scope === 'string' ? scope.split(' ').filter((token) => SCOPE_TOKEN.test(token)) : [];
}

/**
 * The scopes the provider accepts: OpenID Connect's, the claim scopes (`entitlements`), its service APIs', the configured API scopes, and every custom
 * scope a registered client declares (plus those of clients about to be registered), so a new API
 * scope needs a registration, not a code change.
 */
export async function acceptedScopes(
  db: Kysely<OidcTables>,
  apiScopes: string[],
  candidates: Array<Record<string, unknown>> = [],
): Promise<string[]> {
  const rows = await db.selectFrom('oidc_models').select('payload').where('model', '=', 'Client').execute();
  const registered = rows.flatMap((row) => scopesOf(row.payload));
  return [...new Set([...OIDC_SCOPES, ...CLAIM_SCOPES, ...SERVICE_SCOPES, ...apiScopes, ...registered, ...candidates.flatMap(scopesOf)])];
}
