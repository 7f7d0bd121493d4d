import Provider, { errors, type Adapter, type Configuration, type JWKS, type KoaContextWithOIDC } from 'oidc-provider';
import type { UserQueries } from '../users/queries.ts';
import { errorPage, logoutPage, signedOutPage } from '../pages/views.ts';
import { requestIdOf } from '../http/request-context.ts';
import { describeProviderError } from './error-messages.ts';
import { ACCESS_TOKEN_TTL, createResourceIndicators } from './resource.ts';

const DAY = 24 * 60 * 60;

/** Token and session lifetimes, in seconds. Access and refresh token lifetimes are product requirements. */
export const LIFETIMES = {
  accessToken: ACCESS_TOKEN_TTL,
  refreshToken: 30 * DAY,
  authorizationCode: 60,
  idToken: 60 * 60,
  interaction: 60 * 60,
  session: 14 * DAY,
  // A grant bounds the whole chain of rotated refresh tokens.
  grant: 365 * DAY,
} as const;

export interface ProviderDependencies {
  issuer: string;
  jwks: JWKS;
  cookieKeys: string[];
  adapter: new (name: string) => Adapter;
  /** Accepted scopes (see scopes.ts). */
  scopes: string[];
  users: UserQueries;
  api: { resource: string; scopes: string[] };
}

function clientName(ctx: KoaContextWithOIDC): string | undefined {
  const client = ctx.oidc?.client;
  return client ? (client.clientName ?? client.clientId) : undefined;
}

export function providerConfiguration(deps: ProviderDependencies): Configuration {
  return {
    adapter: deps.adapter,
    jwks: deps.jwks,
    cookies: {
      keys: deps.cookieKeys,
      long: { httpOnly: true, sameSite: 'lax', signed: true },
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    scopes: deps.scopes,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // Scope claims are in the ID token too, so relying parties need not call userinfo for them.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    allowOmittingSingleRegisteredRedirectUri: false,
    rotateRefreshToken: true,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    extraClientMetadata: {
      properties: ['first_party'],
      validator(_ctx, key, value) {
        if (key === 'first_party' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('first_party must be a boolean');
        }
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256'],
      userinfoSigningAlgValues: ['RS256'],
      introspectionSigningAlgValues: ['RS256'],
      authorizationSigningAlgValues: ['RS256'],
    },
    ttl: {
      AccessToken: LIFETIMES.accessToken,
      ClientCredentials: LIFETIMES.accessToken,
      AuthorizationCode: LIFETIMES.authorizationCode,
      IdToken: LIFETIMES.idToken,
      RefreshToken: LIFETIMES.refreshToken,
      Interaction: LIFETIMES.interaction,
      Session: LIFETIMES.session,
      Grant: LIFETIMES.grant,
    },
    // Browsers may call the JSON endpoints only from origins the client registered redirect URIs on.
    clientBasedCORS(_ctx, origin, client) {
      return client.redirectUris?.some((uri) => URL.parse(uri)?.origin === origin) ?? false;
    },
    interactions: {
      url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // Only clients that authenticate with a secret or key may introspect.
        async allowedPolicy(_ctx, client) {
          return client.clientAuthMethod !== 'none';
        },
      },
      resourceIndicators: createResourceIndicators(deps.api),
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = logoutPage({ form, clientName: clientName(ctx) });
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = signedOutPage(clientName(ctx));
        },
      },
    },
    async findAccount(_ctx, sub) {
      const user = await deps.users.findById(sub);
      if (!user || user.disabled_at) return undefined;
      return {
        accountId: user.id,
        async claims() {
          return { sub: user.id, email: user.email, email_verified: user.email_verified, name: user.name };
        },
      };
    },
    async renderError(ctx, out) {
      const { title, message } = describeProviderError(String(out.error));
      ctx.type = 'html';
      ctx.body = errorPage({
        title,
        message,
        detail: out.error_description ? `${out.error}: ${out.error_description}` : String(out.error),
        requestId: requestIdOf(ctx.req),
      });
    },
  };
}

export function createProvider(deps: ProviderDependencies): Provider {
  return new Provider(deps.issuer, providerConfiguration(deps));
}
