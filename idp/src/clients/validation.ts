import { randomBytes } from 'node:crypto';
import { createOidcAdapter, type OidcTables } from '@jobswipe/adapters';
import type { Config } from '@jobswipe/config';
import { generateSigningKey } from '@jobswipe/keystore';
import type { Kysely } from 'kysely';
import { createProvider } from '../provider/configuration.ts';
import { acceptedScopes } from '../provider/scopes.ts';
import type { UserQueries } from '../users/queries.ts';
import type { Metadata, ValidateClient } from './registry.ts';

/**
 * Client metadata is validated by a provider configured like the server's, accepting the scopes the
 * new client declares (a new API scope needs a registration, not a restart). Validation signs
 * nothing, so that provider gets a throwaway key rather than the keystore's.
 */
export function createClientValidator(config: Config, db: Kysely<OidcTables>, users: UserQueries): ValidateClient {
  let throwaway: ReturnType<typeof generateSigningKey> | undefined;
  return async (metadata: Metadata) => {
    // One RSA key per validator, however many clients an import validates.
    throwaway ??= generateSigningKey();
    const provider = createProvider({
      issuer: config.issuer,
      jwks: { keys: [(await throwaway).privateJwk] },
      cookieKeys: [randomBytes(32).toString('base64url')],
      adapter: createOidcAdapter(db),
      scopes: await acceptedScopes(db, config.api.scopes, [metadata]),
      users,
      api: config.api,
    });
    await provider.Client.validate(metadata);
  };
}
