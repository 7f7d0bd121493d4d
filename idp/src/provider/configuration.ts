import Provider, { errors, type Adapter, type Configuration, type JWKS, type KoaContextWithOIDC } from 'oidc-provider';
import { unlessUnavailable } from '@jobswipe/adapters';
import type { UserQueries } from '../users/queries.ts';
import type { Context } from 'koa';
import { errorPage, logoutPage, signedOutPage } from '../pages/views.ts';
import { deviceCodePage, deviceConfirmPage, deviceSuccessPage } from '../pages/device.ts';
import { FORM_REFUSED, issueCsrfToken } from '../http/csrf.ts';
import { DEVICE_PATH, deviceCodeError, prefilledUserCode } from '../interactions/device-codes.ts';
import { requestIdOf } from '../http/request-scope.ts';
import { describeProviderError } from '../pages/error-messages.ts';
import { answerForgedProviderForms } from './forged-forms.ts';
import { createResourceIndicators } from './resource.ts';
import { LIFETIMES } from './lifetimes.ts';
import { accountClient } from '../clients/account-client.ts';
import { assertClientAssertionLifetime } from './client-assertion-lifetime.ts';
import { discoveryUnderIssuer } from './discovery-urls.ts';
import { keepStaticAnswers } from './static-answers.ts';
import { installAtomicReplayDetection } from './replay-detection.ts';
import { introspectionAllowedPolicy, RESOURCE_SERVER_AUDIENCES, validateResourceServerAudiences } from './introspection-policy.ts';
import { webOriginOf } from '../clients/origins.ts';
import type { LogoutNotice } from '../sessions/delivery.ts';
import type { RefreshReplay } from './refresh-replay.ts';
import { ACR_VALUES } from '../interactions/sign-in-result.ts';
import { acrEnforcingPolicy } from './acr-policy.ts';
import { ENTITLEMENT_CLAIMS, ENTITLEMENTS_SCOPE, entitlementClaims, oncePerRequest, entitlementTokenClaims, type EntitlementsOf } from './entitlement-claims.ts';

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
  /**
   * The reuse grace period of refresh tokens (refresh-replay.ts), shared by the provider instances of
   * one process. Without it, any second use of a refresh token revokes its grant.
   */
  refreshReplay?: RefreshReplay | undefined;
  /**
   * The `plan` and `entitlements` claims of a user (the plan library's entitlementsOf), read when a
   * token or userinfo answer carries the `entitlements` scope. Without it, those claims are empty.
   */
  entitlementsOf?: EntitlementsOf | undefined;
}

const noEntitlements: EntitlementsOf = async () => {
  throw new Error('entitlements are not available in this provider instance');
};

function clientName(ctx: KoaContextWithOIDC): string | undefined {
  const client = ctx.oidc?.client;
  return client ? (client.clientName ?? client.clientId) : undefined;
}

/** The provider's session-bound xsrf secret and our CSRF token, for the device pages' forms. */
function deviceFormFields(ctx: KoaContextWithOIDC) {
  const state = (ctx.oidc.session as { state?: { secret?: unknown } } | undefined)?.state;
  // The provider's Koa context has the same cookie keys as ours, so our CSRF cookie works in both.
  return { action: DEVICE_PATH, xsrf: String(state?.secret ?? ''), csrf: issueCsrfToken(ctx as unknown as Context) };
}

const SESSION_COOKIE = { httpOnly: true, sameSite: 'lax', signed: true } as const;

/**
 * On an error, oidc-provider's handler for the device pages puts a fresh xsrf secret in the browser
 * session and then only "persists" it, which throws (a 500) for a session never saved before, e.g.
 * /device/<unknown uid> without a session cookie. Such a session is saved here first, as the
 * provider's session middleware would, so the page's form works.
 */
async function saveNewSession(ctx: KoaContextWithOIDC): Promise<void> {
  const session = ctx.oidc.session as unknown as { exp?: unknown; id: string; save(ttl: number): Promise<unknown> } | undefined;
  if (!session || typeof session.exp === 'number') return;
  ctx.oidc.cookies.set(ctx.oidc.provider.cookieName('session'), session.id, SESSION_COOKIE);
  await session.save(LIFETIMES.session);
}

function renderDevicePage(ctx: KoaContextWithOIDC, body: string): void {
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
}

export function providerConfiguration(deps: ProviderDependencies): Configuration {
  const entitlementsOf = oncePerRequest(deps.entitlementsOf ?? noEntitlements);
  return {
    adapter: deps.adapter,
    clients: [accountClient(deps.issuer)],
    jwks: deps.jwks,
    cookies: {
      keys: deps.cookieKeys,
      long: SESSION_COOKIE,
      short: { httpOnly: true, sameSite: 'lax', signed: true },
    },
    scopes: deps.scopes,
    claims: {
      // The sign-in's level and methods (interactions/sign-in-result.ts: RFC 8176 values and our own `fed`;
      // docs/conformance.md) in every ID token, asked for or not: oidc-provider releases a claim of no
      // scope only when the request names it. Userinfo never includes them.
      openid: ['sub', 'acr', 'amr'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      [ENTITLEMENTS_SCOPE]: [...ENTITLEMENT_CLAIMS],
    },
    // The plan is read when the token is issued, not kept in the grant: a plan change shows in the next token.
    extraTokenClaims: entitlementTokenClaims(entitlementsOf),
    // Scope claims are in the ID token too, so relying parties need not call userinfo for them.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    // `upstream=<id>`: sign in with that upstream without our login page (docs/social-login.md).
    extraParams: ['upstream'],
    allowOmittingSingleRegisteredRedirectUri: false,
    rotateRefreshToken: true,
    clientDefaults: {
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    assertJwtClientAuthClaimsAndHeader: assertClientAssertionLifetime,
    extraClientMetadata: {
      properties: ['first_party', RESOURCE_SERVER_AUDIENCES],
      validator(_ctx, key, value) {
        if (key === 'first_party' && value !== undefined && typeof value !== 'boolean') {
          throw new errors.InvalidClientMetadata('first_party must be a boolean');
        }
        if (key === RESOURCE_SERVER_AUDIENCES) validateResourceServerAudiences(value, [deps.api.resource]);
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
      DeviceCode: LIFETIMES.deviceCode,
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
      // acr_values=urn:jobswipe:acr:mfa is enforced, not just passed on (acr-policy.ts, docs/mfa.md).
      policy: acrEnforcingPolicy(),
    },
    // The levels a sign-in reaches (interactions/sign-in-result.ts): discovery's acr_values_supported.
    acrValues: ACR_VALUES,
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      userinfo: { enabled: true },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // A token's own client, or a registered resource server for its audience; never a public client.
        allowedPolicy: introspectionAllowedPolicy,
      },
      resourceIndicators: createResourceIndicators(deps.api),
      // RFC 8628 for headless workers. The code is checked, rate-limited and CSRF-checked by
      // interactions/device.ts before the provider sees a form; these render our pages.
      deviceFlow: {
        enabled: true,
        async userCodeInputSource(ctx, _form, _out, error) {
          await saveNewSession(ctx);
          renderDevicePage(ctx, deviceCodePage({
            ...deviceFormFields(ctx),
            userCode: prefilledUserCode(ctx.req),
            error: error ? deviceCodeError(error) : undefined,
          }));
        },
        async userCodeConfirmSource(ctx, _form, client, _deviceInfo, userCode) {
          renderDevicePage(ctx, deviceConfirmPage({ ...deviceFormFields(ctx), userCode, clientName: client.clientName ?? client.clientId }));
        },
        async successSource(ctx) {
          renderDevicePage(ctx, deviceSuccessPage(clientName(ctx) ?? 'The app'));
        },
      },
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
    async findAccount(ctx, sub) {
      // The database being away is a 503 (temporarily_unavailable) for the client, not a server_error.
      const user = await unlessUnavailable(deps.users.findAccount(sub));
      if (!user || user.disabled_at) return undefined;
      return {
        accountId: user.id,
        async claims(_use, scope) {
          return {
            sub: user.id,
            email: user.email,
            email_verified: user.email_verified,
            name: user.name,
            ...(await entitlementClaims((userId) => entitlementsOf(ctx.req, userId), user.id, scope)),
          };
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
  const replay = deps.refreshReplay;
  const provider = replay
    ? new replay.Provider(deps.issuer, providerConfiguration({ ...deps, adapter: replay.adapter }))
    : new Provider(deps.issuer, providerConfiguration(deps));
  // Outermost: keeps discovery and the JWKS as the rest of the stack finished them.
  provider.use(keepStaticAnswers(provider));
  provider.use(discoveryUnderIssuer(deps.issuer));
  installLogoutHooks(provider, deps.sendLogout);
  reuseClientInstances(provider);
  installAtomicReplayDetection(provider);
  answerForgedProviderForms(provider, (requestId) => errorPage({ title: FORM_REFUSED.title, message: FORM_REFUSED.message, requestId }));
  return provider;
}

type ClientClass = { find(id: string): Promise<unknown>; adapter: { find(id: string): Promise<unknown> } };

/**
 * oidc-provider builds a client from the adapter's metadata once, then finds it again on every
 * request by a SHA-256 of the metadata serialised to JSON. The adapter hands out the same frozen
 * metadata object while a client is unchanged (adapters/src/client-cache.ts), so the instance is
 * kept against that object instead: no serialising and hashing per request. A changed client comes
 * back as a new object, and whatever the adapter does not keep (while change notifications are down)
 * goes the provider's own way, as before.
 */
function reuseClientInstances(provider: Provider): void {
  const Client = provider.Client as unknown as ClientClass;
  const find = Client.find.bind(Client);
  const byMetadata = new WeakMap<object, unknown>();
  Client.find = async (id: string) => {
    if (typeof id !== 'string' || id.length === 0) return find(id);
    const metadata = await Client.adapter.find(id);
    if (!metadata || typeof metadata !== 'object' || !Object.isFrozen(metadata)) return find(id);
    const kept = byMetadata.get(metadata);
    if (kept) return kept;
    const client = await find(id);
    if (client) byMetadata.set(metadata, client);
    return client;
  };
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
