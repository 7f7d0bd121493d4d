import Provider, { errors, type Adapter, type Configuration, type JWKS, type KoaContextWithOIDC } from 'oidc-provider';
import type { UserQueries } from '../users/queries.ts';
import { errorPage, logoutPage, signedOutPage } from '../pages/views.ts';
import { requestIdOf } from '../http/request-context.ts';
import { describeProviderError } from './error-messages.ts';
import { ACCESS_TOKEN_TTL, createResourceIndicators } from './resource.ts';
import { accountClient } from './account-client.ts';
import { webOriginOf } from '../clients/origins.ts';
import type { LogoutNotice } from '../sessions/delivery.ts';

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
  /**
   * Receives the back-channel logout the provider's own end-session endpoint asks for, so delivery
   * happens in the background (see installLogoutHooks). Without it, no logout token is sent.
   */
  sendLogout?: ((notices: LogoutNotice[]) => void) | undefined;
}

function clientName(ctx: KoaContextWithOIDC): string | undefined {
  const client = ctx.oidc?.client;
  return client ? (client.clientName ?? client.clientId) : undefined;
}

export function providerConfiguration(deps: ProviderDependencies): Configuration {
  return {
    adapter: deps.adapter,
    clients: [accountClient(deps.issuer)],
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
    // Browsers may call the JSON endpoints only from origins the client registered redirect URIs on;
    // only http(s) ones: a custom-scheme redirect URI has the origin "null", which must never match.
    clientBasedCORS(_ctx, origin, client) {
      return client.redirectUris?.some((uri) => webOriginOf(uri) === origin) ?? false;
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
      backchannelLogout: { enabled: true },
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
  const provider = new Provider(deps.issuer, providerConfiguration(deps));
  installLogoutHooks(provider, deps.sendLogout);
  return provider;
}

interface ClientInstance {
  clientId: string;
  backchannelLogoutUri?: string;
}

/**
 * Two changes to this provider instance's Client class (each instance has its own):
 * - every ID token carries `sid`, whether or not the client registered for back-channel logout, so
 *   any relying party can match a later logout token to the session it started;
 * - the end-session endpoint hands back-channel logout to our sender and does not wait for relying
 *   parties to answer (oidc-provider would await each delivery before showing the user a page).
 */
function installLogoutHooks(provider: Provider, sendLogout: ProviderDependencies['sendLogout']): void {
  const prototype = provider.Client.prototype as unknown as {
    includeSid(): boolean;
    backchannelLogout(this: ClientInstance, sub: string, sid: string | undefined): Promise<void>;
  };
  prototype.includeSid = () => true;
  prototype.backchannelLogout = async function backchannelLogout(sub, sid) {
    if (!sendLogout || !this.backchannelLogoutUri) return;
    sendLogout([{ clientId: this.clientId, uri: this.backchannelLogoutUri, sub, sid }]);
  };
}
