import { errors, type KoaContextWithOIDC, type ResourceServer } from 'oidc-provider';
import { LIFETIMES } from './lifetimes.ts';

/** Scopes that belong to OpenID Connect itself; every other scope names something in the API. */
export const OIDC_SCOPES = new Set(['openid', 'offline_access', 'profile', 'email']);

/**
 * Scopes that name claims about the user which belong both in userinfo (and the ID token) and in the
 * API's JWT access tokens: `entitlements` (the plan, docs/usage.md). Any client may ask (the user
 * consents, as for `profile`); asking for one alone does not bind the access token to the API.
 */
export const CLAIM_SCOPES: ReadonlySet<string> = new Set(['entitlements']);

/**
 * Scopes of the provider's own service APIs (the usage API, docs/usage.md; the admin API,
 * docs/admin-api.md). Always accepted, but granted only to a client that registered them in its
 * `scope`: never to every client through API_SCOPES, and never to a client that merely asks.
 */
export const SERVICE_SCOPES: ReadonlySet<string> = new Set(['usage:write', 'usage:read', 'admin']);

interface ClientWithScope {
  scope?: string | undefined;
}

export function createResourceIndicators(api: { resource: string; scopes: string[] }) {
  /** The API's scopes for a client: the configured ones plus any custom scope the client registered. */
  const apiScopesFor = (client: ClientWithScope | undefined): Set<string> => {
    const registered = (client?.scope ?? '').split(' ').filter((scope) => scope && !OIDC_SCOPES.has(scope) && !CLAIM_SCOPES.has(scope));
    return new Set([...api.scopes.filter((scope) => !SERVICE_SCOPES.has(scope) && !CLAIM_SCOPES.has(scope)), ...registered]);
  };

  return {
    enabled: true,
    // Service clients always get API tokens; user-facing flows do when they ask for an API scope.
    // Otherwise no resource is bound and the access token stays an opaque token for userinfo.
    async defaultResource(ctx: KoaContextWithOIDC): Promise<string | undefined> {
      const params = ctx.oidc.params as { grant_type?: string; scope?: string } | undefined;
      if (params?.grant_type === 'client_credentials') return api.resource;
      const requested = (params?.scope ?? '').split(' ');
      const scopes = apiScopesFor(ctx.oidc.client as ClientWithScope | undefined);
      return requested.some((scope) => scopes.has(scope)) ? api.resource : undefined;
    },
    async useGrantedResource(): Promise<boolean> {
      return true;
    },
    async getResourceServerInfo(
      _ctx: KoaContextWithOIDC,
      resourceIndicator: string,
      client: ClientWithScope,
    ): Promise<ResourceServer> {
      if (resourceIndicator !== api.resource) {
        throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
      }
      return {
        // The claim scopes too, so a token for the API carries `entitlements` when the client asked.
        scope: [...apiScopesFor(client), ...CLAIM_SCOPES].join(' '),
        audience: api.resource,
        accessTokenTTL: LIFETIMES.accessToken,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      };
    },
  };
}
