import * as oidc from 'openid-client';
import type { Upstream } from './settings.ts';
import type { UpstreamIdentity } from './service.ts';

/*
 * The relying-party side of social login, with openid-client: authorization code with PKCE, `state`
 * and (OpenID Connect) `nonce`; the ID token's issuer, signature, audience, expiry and nonce are
 * checked by openid-client. Plain OAuth 2.0 upstreams (GitHub, LinkedIn) are read through their
 * userinfo endpoint instead, mapped with the upstream's `claims`.
 */

/** What a sign-in must find again at the callback; kept sealed in the browser (state-cookie.ts). */
export interface PendingAuthorization {
  state: string;
  nonce: string;
  verifier: string;
}

/** A failed upstream answer, with a reason for the audit row and a sentence for the user. */
export class UpstreamAnswerRejected extends Error {
  readonly code = 'ERR_UPSTREAM_ANSWER';
  readonly reason: 'state_mismatch' | 'upstream_error' | 'invalid_answer' | 'unreachable';
  readonly upstreamError: string | undefined;

  constructor(reason: UpstreamAnswerRejected['reason'], message: string, upstreamError?: string) {
    super(message);
    this.reason = reason;
    this.upstreamError = upstreamError;
  }
}

const DISCOVERY_TTL_MS = 10 * 60 * 1000;
const REQUEST_TIMEOUT_SECONDS = 10;

/** Same-origin loopback upstreams (tests, a local upstream) are reached over http; everything else https only. */
function isLoopbackHttp(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(hostname);
}

function textField(value: unknown): string | undefined {
  if (typeof value === 'string' && value !== '') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** The upstream clients of one process: discovery is kept for ten minutes per upstream and issuer. */
export function createUpstreamClients(redirectUriOf: (upstreamId: string) => string) {
  const discovered = new Map<string, { config: Promise<oidc.Configuration>; at: number }>();

  async function configurationOf(upstream: Upstream): Promise<oidc.Configuration> {
    const { settings } = upstream;
    const auth = oidc.ClientSecretPost(upstream.clientSecret);
    if (upstream.type === 'oauth2') {
      const config = new oidc.Configuration(
        {
          // No ID token is ever checked against it: the authorization endpoint's origin names the server.
          issuer: new URL(String(settings.authorization_endpoint)).origin,
          authorization_endpoint: String(settings.authorization_endpoint),
          token_endpoint: String(settings.token_endpoint),
          userinfo_endpoint: String(settings.userinfo_endpoint),
        },
        upstream.clientId,
        upstream.clientSecret,
        auth,
      );
      if (isLoopbackHttp(String(settings.token_endpoint))) oidc.allowInsecureRequests(config);
      config.timeout = REQUEST_TIMEOUT_SECONDS;
      return config;
    }
    const issuer = String(settings.issuer);
    const key = `${upstream.id} ${issuer} ${upstream.clientId} ${upstream.clientSecret}`;
    const cached = discovered.get(key);
    if (cached && Date.now() - cached.at < DISCOVERY_TTL_MS) return cached.config;
    const config = oidc
      .discovery(new URL(issuer), upstream.clientId, upstream.clientSecret, auth, {
        ...(isLoopbackHttp(issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
        timeout: REQUEST_TIMEOUT_SECONDS,
      })
      .then((found) => {
        found.timeout = REQUEST_TIMEOUT_SECONDS;
        return found;
      });
    discovered.set(key, { config, at: Date.now() });
    // A failed discovery is tried again at the next sign-in, not kept for ten minutes.
    config.catch(() => discovered.delete(key));
    return config;
  }

  async function reach<T>(upstream: Upstream, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (error) {
      if (error instanceof UpstreamAnswerRejected) throw error;
      if (error instanceof oidc.AuthorizationResponseError) {
        throw new UpstreamAnswerRejected('upstream_error', `${upstream.name} did not sign you in.`, error.error);
      }
      if (error instanceof oidc.ResponseBodyError || error instanceof oidc.ClientError) {
        // openid-client's checks (state, nonce, issuer, audience, signature, expiry) end here.
        const detail = 'error' in error && typeof error.error === 'string' ? error.error : (error as { code?: string }).code;
        throw new UpstreamAnswerRejected('invalid_answer', `The answer from ${upstream.name} could not be accepted.`, detail);
      }
      throw new UpstreamAnswerRejected('unreachable', `${upstream.name} cannot be reached right now.`, (error as { code?: string }).code);
    }
  }

  return {
    /** Where to send the browser, and what the callback must find again. */
    async start(upstream: Upstream): Promise<{ url: string; pending: PendingAuthorization }> {
      return reach(upstream, async () => {
        const config = await configurationOf(upstream);
        const pending = { state: oidc.randomState(), nonce: oidc.randomNonce(), verifier: oidc.randomPKCECodeVerifier() };
        const url = oidc.buildAuthorizationUrl(config, {
          redirect_uri: redirectUriOf(upstream.id),
          scope: upstream.settings.scopes,
          state: pending.state,
          code_challenge: await oidc.calculatePKCECodeChallenge(pending.verifier),
          code_challenge_method: 'S256',
          ...(upstream.type === 'oidc' ? { nonce: pending.nonce } : {}),
        });
        return { url: url.toString(), pending };
      });
    },

    /** Redeems the code at the callback and says who signed in; a mismatch throws UpstreamAnswerRejected. */
    async finish(upstream: Upstream, search: string, pending: PendingAuthorization): Promise<UpstreamIdentity> {
      // The callback as registered, whatever host or proxy the request came through.
      const callbackUrl = new URL(redirectUriOf(upstream.id));
      callbackUrl.search = search;
      const state = callbackUrl.searchParams.get('state');
      if (state !== pending.state) throw new UpstreamAnswerRejected('state_mismatch', `The answer from ${upstream.name} does not belong to this sign-in.`);
      const error = callbackUrl.searchParams.get('error');
      if (error !== null) throw new UpstreamAnswerRejected('upstream_error', `${upstream.name} did not sign you in.`, error.slice(0, 64));
      return reach(upstream, async () => {
        const config = await configurationOf(upstream);
        const tokens = await oidc.authorizationCodeGrant(
          config,
          callbackUrl,
          {
            pkceCodeVerifier: pending.verifier,
            expectedState: pending.state,
            ...(upstream.type === 'oidc' ? { expectedNonce: pending.nonce, idTokenExpected: true } : {}),
          },
          { redirect_uri: redirectUriOf(upstream.id) },
        );
        if (upstream.type === 'oidc') return identityFromIdToken(upstream, tokens.claims());
        return identityFromUserinfo(upstream, config, tokens.access_token);
      });
    },
  };
}

export type UpstreamClients = ReturnType<typeof createUpstreamClients>;

function identityFromIdToken(upstream: Upstream, claims: oidc.IDToken | undefined): UpstreamIdentity {
  if (!claims) throw new UpstreamAnswerRejected('invalid_answer', `${upstream.name} sent no ID token.`);
  return {
    upstreamId: upstream.id,
    subject: claims.sub,
    email: textField(claims['email']),
    emailVerified: claims['email_verified'] === true,
    name: textField(claims['name']) ?? '',
  };
}

async function fetchJson(upstream: Upstream, config: oidc.Configuration, accessToken: string, url: string): Promise<unknown> {
  const response = await oidc.fetchProtectedResource(config, accessToken, new URL(url), 'GET', undefined, new Headers({ accept: 'application/json' }));
  if (!response.ok) throw new UpstreamAnswerRejected('invalid_answer', `${upstream.name} did not share your profile.`, `HTTP ${response.status}`);
  return response.json();
}

/** GitHub-shaped: the primary verified address of the emails endpoint, else any verified one. */
export function verifiedAddressOf(emails: unknown): string | undefined {
  if (!Array.isArray(emails)) return undefined;
  const verified = emails.filter((entry): entry is { email: string; primary?: boolean } =>
    typeof entry === 'object' && entry !== null && (entry as { verified?: unknown }).verified === true && typeof (entry as { email?: unknown }).email === 'string');
  return (verified.find((entry) => entry.primary === true) ?? verified[0])?.email;
}

async function identityFromUserinfo(upstream: Upstream, config: oidc.Configuration, accessToken: string): Promise<UpstreamIdentity> {
  const { settings } = upstream;
  const claims = settings.claims ?? { sub: 'sub' };
  const info = (await fetchJson(upstream, config, accessToken, String(settings.userinfo_endpoint))) as Record<string, unknown>;
  const subject = textField(info[claims['sub'] ?? 'sub']);
  if (!subject) throw new UpstreamAnswerRejected('invalid_answer', `${upstream.name} did not say who you are.`, 'no subject');
  let email = claims['email'] ? textField(info[claims['email']]) : undefined;
  let emailVerified = claims['email_verified'] ? info[claims['email_verified']] === true : false;
  if (settings.emails_endpoint) {
    const verified = verifiedAddressOf(await fetchJson(upstream, config, accessToken, settings.emails_endpoint));
    if (verified) {
      email = verified;
      emailVerified = true;
    }
  }
  return { upstreamId: upstream.id, subject, email, emailVerified, name: (claims['name'] ? textField(info[claims['name']]) : undefined) ?? '' };
}
