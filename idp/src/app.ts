import Router from '@koa/router';
import Koa from 'koa';
import compose from 'koa-compose';
import type Provider from 'oidc-provider';
import { accountRoutes } from './account/routes.ts';
import { enforceRegisteredAuthMethod, requestForProvider } from './http/client-auth-method.ts';
import { healthRoutes, type Readiness } from './http/health.ts';
import { requestContext, requestTracking } from './http/request-context.ts';
import { providerRouteOf, resolveProviderRoute, routePathOf } from './http/route-resolution.ts';
import { staticAnswerOf } from './provider/static-answers.ts';
import { jsonSecurityHeaders, securityHeaders } from './http/security-headers.ts';
import { interactionRoutes } from './interactions/routes.ts';
import { deviceCodeRoutes } from './interactions/device.ts';
import type { Logger } from './logger.ts';
import { homePage } from './pages/views.ts';
import { STYLESHEET } from './pages/stylesheet.ts';
import type { PasswordHasher } from './users/passwords.ts';
import type { UserQueries } from './users/queries.ts';
import type { SessionRegistry } from './sessions/registry.ts';
import type { ClientIp } from './http/client-ip.ts';
import type { Counter, DeviceCodeLimits, LoginLimits, ClientAuthLimits } from './security/limits.ts';
import type { SessionService } from './sessions/service.ts';
import type { Libraries } from './composition.ts';
import { corsAllowList } from './http/cors.ts';
import { invitationCheck, signupRoutes, type SignupOptions } from './signup/routes.ts';
import { passwordResetRoutes, type ResetLimits } from './password-reset/routes.ts';
import type { Mailer } from './mail/transport.ts';
import type { AccountTokens } from './users/account-tokens.ts';
import { believeForwardedHeaders } from './http/forwarded-headers.ts';
import { providerOutcomes, tokenEndpointLimits } from './security/token-limits.ts';
import type { AccessTokenVerifier } from './http/bearer-token.ts';
import { usageRoutes } from './plans/usage-routes.ts';
import { countRequests, labelRoute, providerRoutePattern } from './metrics/http-requests.ts';
import type { Metrics } from './metrics/registry.ts';
import { adminApiRoutes } from './admin-api/routes.ts';
import { createUpstreamClients } from './upstreams/client.ts';
import { createUpstreamSignIn } from './upstreams/routes.ts';
import { mfaAccountRoutes } from './mfa/account-routes.ts';
import { mfaInteractionRoutes } from './mfa/interaction-routes.ts';
import { PASSKEY_SCRIPT } from './mfa/passkey-script.ts';
import { PASSKEY_SCRIPT_PATH } from './mfa/views.ts';
import { LIFETIMES } from './provider/lifetimes.ts';

export interface AppDependencies {
  issuer: string;
  cookieKeys: string[];
  log: Logger;
  /** The provider currently serving; a getter so the instance can be replaced without a restart. */
  provider: () => Provider;
  /** JWKS Cache-Control max-age: the window a new key is published before it signs. */
  jwksCacheSeconds: number;
  ready: () => Promise<Readiness>;
  users: UserQueries;
  hasher: PasswordHasher;
  registry: SessionRegistry;
  sessions: SessionService;
  loginLimits: LoginLimits;
  /** Wrong user codes on the device page, per IP (RFC 8628). */
  deviceCodeLimits: DeviceCodeLimits;
  clientIp: ClientIp;
  /** The business rules the pages call (account settings, password reset, sign-up) and the event recorder (docs/audit.md). */
  libraries: Pick<
    Libraries,
    'recordEvent' | 'accountSettings' | 'passwordReset' | 'registration' | 'plans' | 'desktopDevices' | 'users' | 'sessions' | 'clientAdministration' | 'keys' | 'auditEvents' | 'upstreams' | 'mfa' | 'totp' | 'passkeys'
  >;
  /** Verifies the provider's own JWT access tokens for our service APIs (the usage API, the admin API). */
  verifyAccessToken: AccessTokenVerifier;
  /** TRUST_PROXY: the peers whose X-Forwarded-* headers are believed. */
  trustProxy: string[];
  tokenLimits: ClientAuthLimits;
  /** Whether an Origin is the origin of a registered redirect URI (CORS is answered only for those). */
  isRegisteredOrigin: (origin: string) => Promise<boolean>;
  /** Running with NODE_ENV=production: turns on HSTS. */
  production: boolean;
  /** The server's metrics: every request is counted and timed by route pattern (docs/monitoring.md). */
  metrics?: Metrics | undefined;
  /** Sign-up, email verification and invitations (docs/accounts.md). */
  signup: SignupOptions;
  /** Account mail (SMTP, or .eml files) and the single-use tokens its links carry. */
  mailer: Mailer;
  accountTokens: AccountTokens;
  /** Forgot-password requests per IP and per address. */
  resetLimits: ResetLimits;
  /** Email change requests per user on /account. */
  emailChangeLimit: Counter<'email-change-user'>;
}

export function createApp(deps: AppDependencies): Koa {
  const app = new Koa();
  app.keys = deps.cookieKeys;
  app.silent = true;
  // X-Forwarded-* are believed only from TRUST_PROXY peers; believeForwardedHeaders removes the rest.
  app.proxy = deps.trustProxy.length > 0;

  const pages = new Router();
  pages.get('/', (ctx) => {
    ctx.type = 'html';
    ctx.body = homePage(deps.issuer);
  });
  pages.get('/assets/idp.css', (ctx) => {
    ctx.type = 'text/css';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = STYLESHEET;
  });
  pages.get(PASSKEY_SCRIPT_PATH, (ctx) => {
    ctx.type = 'text/javascript';
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = PASSKEY_SCRIPT;
  });

  const invited = invitationCheck(deps.accountTokens);
  const upstreamSignIn = createUpstreamSignIn({
    provider: deps.provider,
    upstreams: deps.libraries.upstreams,
    clients: createUpstreamClients((id) => `${deps.issuer}/upstream/${id}/callback`),
    cookieKeys: deps.cookieKeys,
    hasher: deps.hasher,
    loginLimits: deps.loginLimits,
    clientIp: deps.clientIp,
    recordEvent: deps.libraries.recordEvent,
    signupMode: deps.signup.mode,
    mfa: deps.libraries.mfa,
  });
  const interactions = interactionRoutes({
    provider: deps.provider,
    users: deps.users,
    hasher: deps.hasher,
    loginLimits: deps.loginLimits,
    clientIp: deps.clientIp,
    recordEvent: deps.libraries.recordEvent,
    signup: { mode: deps.signup.mode, unverifiedSignIn: deps.signup.unverifiedSignIn },
    invited,
    desktopDevices: deps.libraries.desktopDevices,
    upstreams: upstreamSignIn.choices,
    mfa: deps.libraries.mfa,
  });
  const mfaInteractions = mfaInteractionRoutes({
    provider: deps.provider,
    users: deps.users,
    mfa: deps.libraries.mfa,
    totp: deps.libraries.totp,
    passkeys: deps.libraries.passkeys,
    loginLimits: deps.loginLimits,
    clientIp: deps.clientIp,
    recordEvent: deps.libraries.recordEvent,
    interactionSeconds: LIFETIMES.interaction,
  });
  const mfaAccount = mfaAccountRoutes({
    provider: deps.provider,
    users: deps.users,
    totp: deps.libraries.totp,
    passkeys: deps.libraries.passkeys,
    hasher: deps.hasher,
    loginLimits: deps.loginLimits,
    clientIp: deps.clientIp,
    recordEvent: deps.libraries.recordEvent,
  });
  const signup = signupRoutes({
    ...deps.signup,
    registration: deps.libraries.registration,
    provider: deps.provider,
    hasher: deps.hasher,
    loginLimits: deps.loginLimits,
    recordEvent: deps.libraries.recordEvent,
    clientIp: deps.clientIp,
  });
  const health = healthRoutes(deps.ready);
  const account = accountRoutes({
    issuer: deps.issuer,
    provider: deps.provider,
    users: deps.users,
    registry: deps.registry,
    sessions: deps.sessions,
    clientIp: deps.clientIp,
    recordEvent: deps.libraries.recordEvent,
    hasher: deps.hasher,
    loginLimits: deps.loginLimits,
    settings: deps.libraries.accountSettings,
    plans: deps.libraries.plans,
    desktopDevices: deps.libraries.desktopDevices,
    tokens: deps.accountTokens,
    emailChangeLimit: deps.emailChangeLimit,
    upstreams: deps.libraries.upstreams,
    mfa: deps.libraries.mfa,
  });
  const passwordReset = passwordResetRoutes({
    reset: deps.libraries.passwordReset,
    tokens: deps.accountTokens,
    limits: deps.resetLimits,
    loginLimits: deps.loginLimits,
    recordEvent: deps.libraries.recordEvent,
    clientIp: deps.clientIp,
    log: deps.log,
  });

  // First: the count and the time cover every answer, refusals included.
  if (deps.metrics) app.use(countRequests(deps.metrics));
  // Before anything reads ctx.ip, ctx.secure or ctx.host.
  app.use(believeForwardedHeaders(deps.trustProxy, deps.clientIp));
  // The provider writes its responses itself, so its pages carry only headers set before it.
  // Discovery and the JWKS, as the provider first built them: fixed headers, no per-request work.
  app.use(staticProviderAnswers(deps.provider, deps.jwksCacheSeconds, requestTracking(deps.log), jsonSecurityHeaders({ production: deps.production })));
  app.use(securityHeaders({ production: deps.production }));
  app.use(corsAllowList(deps.isRegisteredOrigin));
  app.use(requestContext(deps.log));
  // Our checks in front of the provider decide by the route its router will take, not the raw path.
  app.use(resolveProviderRoute(deps.provider));
  // Routers' middleware reads the params and router it adds to the context itself; app.use accepts it as such.
  const ourRoutes = compose([
    health.routes(),
    pages.routes(),
    signup.routes(),
    signup.allowedMethods(),
    passwordReset.routes(),
    passwordReset.allowedMethods(),
    upstreamSignIn.router.routes(),
    interactions.routes(),
    interactions.allowedMethods(),
    mfaInteractions.routes(),
    mfaInteractions.allowedMethods(),
    account.routes(),
    account.allowedMethods(),
    mfaAccount.routes(),
    mfaAccount.allowedMethods(),
    // The usage API: bearer tokens, no cookies, so no CSRF token; no CORS (corsAllowList leaves it out).
    usageRoutes({ plans: deps.libraries.plans, verifyAccessToken: deps.verifyAccessToken, log: deps.log, realm: deps.issuer }).routes(),
    // The admin API: the same, for clients holding the scope admin (docs/admin-api.md).
    adminApiRoutes({ libraries: deps.libraries, verifyAccessToken: deps.verifyAccessToken, log: deps.log, issuer: deps.issuer }).routes(),
  ] as Koa.Middleware[]);
  // None of our routes is at a path the provider's guarded routes take (token, introspection, JWKS...):
  // those requests go straight on, without being matched against every router of ours.
  app.use((ctx, next) => {
    const route = providerRouteOf(ctx);
    return route && route.name !== 'code_verification' ? next() : ourRoutes(ctx, next);
  });
  app.use(deviceCodeRoutes({ provider: deps.provider, limits: deps.deviceCodeLimits, clientIp: deps.clientIp, recordEvent: deps.libraries.recordEvent }));
  // Limits first: a blocked client is refused before its credentials or method are looked at.
  app.use(tokenEndpointLimits(deps.tokenLimits, deps.provider, deps.clientIp, deps.log, deps.libraries.recordEvent));
  app.use(enforceRegisteredAuthMethod(deps.provider));

  const handlers = new WeakMap<Provider, ReturnType<Provider['callback']>>();
  app.use(async (ctx) => {
    const provider = deps.provider();
    let handler = handlers.get(provider);
    if (!handler) {
      provider.proxy = app.proxy;
      provider.use(providerOutcomes());
      handler = provider.callback();
      handlers.set(provider, handler);
    }
    if (providerRouteOf(ctx)?.name === 'jwks') ctx.set('Cache-Control', `public, max-age=${deps.jwksCacheSeconds}`);
    ctx.respond = false;
    await handler(requestForProvider(ctx.req), ctx.res);
  });
  return app;
}

/** The provider answers discovery at both (its route `discovery`; pathFor names only the second). */
const DISCOVERY_PATHS = new Set(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']);

/**
 * Discovery and the JWKS as the serving provider instance first answered them, without going through
 * the rest of the stack. Only plain GETs of the exact paths: a request with an Origin (CORS is
 * answered per origin) or any other spelling of the path goes to the provider as before.
 */
function staticProviderAnswers(
  provider: () => Provider,
  jwksCacheSeconds: number,
  track: (ctx: Koa.Context) => string,
  headers: Readonly<Record<string, string>>,
): Koa.Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'GET' || ctx.get('origin') !== '') return next();
    const serving = provider();
    const route = ctx.path === routePathOf(serving, 'jwks') ? 'jwks' : DISCOVERY_PATHS.has(ctx.path) ? 'discovery' : undefined;
    const answer = route && staticAnswerOf(serving, route);
    if (!route || !answer) return next();
    track(ctx);
    ctx.set(headers);
    if (route === 'jwks') ctx.set('Cache-Control', `public, max-age=${jwksCacheSeconds}`);
    labelRoute(ctx.req, providerRoutePattern(serving, route));
    ctx.set('Vary', 'Origin');
    ctx.type = answer.contentType;
    ctx.body = answer.body;
  };
}
