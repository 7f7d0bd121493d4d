import { z } from 'zod';
import type { StoredUpstreamSettings } from './tables.ts';

/*
 * An upstream as the seed file's `upstreams` array gives it (docs/social-login.md). OpenID Connect
 * upstreams are found by discovery from their issuer; plain OAuth 2.0 ones name their endpoints and
 * how their userinfo answer maps to our claims.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** https, or http to a loopback host (an upstream on this machine, as in tests). */
export function allowedUpstreamUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname));
}

const endpoint = z.string().refine(allowedUpstreamUrl, 'must be an https URL (http only for localhost)');

export const upstreamIdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lower-case letters, digits, - or _ (at most 64)');

/** Our claim -> the upstream's userinfo field holding it (`sub` is required). */
const claimsSchema = z
  .strictObject({
    sub: z.string().min(1),
    email: z.string().min(1).optional(),
    email_verified: z.string().min(1).optional(),
    name: z.string().min(1).optional(),
  });

const common = {
  id: upstreamIdSchema,
  name: z.string().trim().min(1).max(100),
  client_id: z.string().min(1, 'client_id is required'),
  // Optional on update: an upstream already stored keeps its secret.
  client_secret: z.string().min(1).optional(),
};

export const upstreamSchema = z.discriminatedUnion('type', [
  z.strictObject({
    ...common,
    type: z.literal('oidc'),
    issuer: endpoint,
    scopes: z.string().trim().default('openid email profile').refine((scopes) => scopes.split(/\s+/).includes('openid'), 'must include openid'),
  }),
  z.strictObject({
    ...common,
    type: z.literal('oauth2'),
    authorization_endpoint: endpoint,
    token_endpoint: endpoint,
    userinfo_endpoint: endpoint,
    emails_endpoint: endpoint.optional(),
    scopes: z.string().trim().default(''),
    claims: claimsSchema.default({ sub: 'sub', email: 'email', email_verified: 'email_verified', name: 'name' }),
  }),
]);

export type UpstreamEntry = z.output<typeof upstreamSchema>;

/** An upstream ready to use: its settings and its secret in the clear (never logged, never shown). */
export interface Upstream {
  id: string;
  name: string;
  type: 'oidc' | 'oauth2';
  settings: StoredUpstreamSettings;
  clientId: string;
  clientSecret: string;
}

/** What of an entry goes into the `settings` column: everything but id, name, type and the client. */
export function storedSettingsOf(entry: UpstreamEntry): StoredUpstreamSettings {
  const { id: _id, name: _name, type: _type, client_id: _clientId, client_secret: _secret, ...settings } = entry;
  return settings;
}

/** Checks one seed entry; the message names the field at fault. */
export function checkUpstream(value: unknown): UpstreamEntry {
  const parsed = upstreamSchema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${issue?.path.join('.') || 'upstream'}: ${issue?.message ?? 'invalid'}`);
  }
  return parsed.data;
}
