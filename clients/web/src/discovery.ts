import { createRemoteJWKSet } from 'jose';
import { z } from 'zod';
import { processState } from './process-state';

const metadataSchema = z.looseObject({
  issuer: z.string(),
  token_endpoint: z.string(),
  jwks_uri: z.string(),
  userinfo_endpoint: z.string().optional(),
  end_session_endpoint: z.string().optional(),
  revocation_endpoint: z.string().optional(),
});

export type ProviderMetadata = z.infer<typeof metadataSchema>;

const CACHE_MS = 60 * 60 * 1000;

interface Discovered {
  at: number;
  metadata: ProviderMetadata;
  jwks: ReturnType<typeof createRemoteJWKSet>;
}

const cache = processState('discovery', () => new Map<string, Promise<Discovered>>());

/** The provider's discovery document and JWKS, fetched over HTTP and kept for an hour. */
export async function discover(issuer: string): Promise<Discovered> {
  const cached = cache.get(issuer);
  if (cached) {
    const found = await cached.catch(() => undefined);
    if (found && Date.now() - found.at < CACHE_MS) return found;
  }
  const loading = (async () => {
    const response = await fetch(`${issuer}/.well-known/openid-configuration`, { headers: { accept: 'application/json' } });
    if (!response.ok) throw new Error(`discovery at ${issuer} answered ${response.status}`);
    const metadata = metadataSchema.parse(await response.json());
    if (metadata.issuer !== issuer) throw new Error(`discovery at ${issuer} names issuer ${metadata.issuer}`);
    return { at: Date.now(), metadata, jwks: createRemoteJWKSet(new URL(metadata.jwks_uri)) };
  })();
  cache.set(issuer, loading);
  loading.catch(() => cache.delete(issuer));
  return loading;
}
