import * as oidc from 'openid-client';
import { Browser, formAction, hiddenField, type BrowserResponse } from './browser.ts';

export interface RelyingParty {
  config: oidc.Configuration;
  redirectUri: string;
}

/** A relying party built with openid-client from our discovery document, as third parties do it. */
export async function relyingParty(
  issuer: string,
  client: { client_id: string; client_secret?: unknown; redirect_uris?: unknown },
  redirectUri?: string,
): Promise<RelyingParty> {
  const secret = typeof client.client_secret === 'string' ? client.client_secret : undefined;
  const config = await oidc.discovery(
    new URL(issuer),
    client.client_id,
    secret,
    secret ? oidc.ClientSecretBasic(secret) : oidc.None(),
    { execute: [oidc.allowInsecureRequests] },
  );
  const uris = Array.isArray(client.redirect_uris) ? (client.redirect_uris as string[]) : [];
  return { config, redirectUri: redirectUri ?? uris[0] ?? 'http://127.0.0.1/callback' };
}

/**
 * The web app as the provider tests register it: a first-party confidential client with its callback
 * on localhost:3000, and whatever `extra` metadata a test needs (a back-channel logout URI, say).
 */
export function webAppClient(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_id: 'web',
    client_name: 'JobSwipe Web',
    redirect_uris: ['http://localhost:3000/callback'],
    post_logout_redirect_uris: ['http://localhost:3000/'],
    first_party: true,
    ...extra,
  };
}

/** Registers a client at a test provider and builds its relying party from discovery. */
export async function registeredRelyingParty(
  idp: { issuer: string; registerClient(metadata: Record<string, unknown>): Promise<{ client_id: string }> },
  metadata: Record<string, unknown>,
): Promise<RelyingParty> {
  return relyingParty(idp.issuer, await idp.registerClient(metadata));
}

export interface AuthorizationRequest {
  url: string;
  verifier: string;
  state: string;
  nonce: string;
}

/** The parameters of a code + PKCE authorization request, and the secrets its callback is checked with. */
export async function authorizationParameters(rp: RelyingParty, scope: string, extra: Record<string, string> = {}) {
  const verifier = oidc.randomPKCECodeVerifier();
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const parameters: Record<string, string> = {
    redirect_uri: rp.redirectUri,
    scope,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    // OpenID Connect Core §11: a request for offline_access must carry prompt=consent.
    ...(scope.split(' ').includes('offline_access') ? { prompt: 'consent' } : {}),
    ...extra,
  };
  return { parameters, verifier, state, nonce };
}

export async function authorizationRequest(rp: RelyingParty, scope: string, extra: Record<string, string> = {}): Promise<AuthorizationRequest> {
  const { parameters, ...checks } = await authorizationParameters(rp, scope, extra);
  return { url: oidc.buildAuthorizationUrl(rp.config, parameters).toString(), ...checks };
}

/** Walks the browser through login (and consent, when shown) up to the redirect to the relying party. */
export async function signIn(
  browser: Browser,
  issuer: string,
  request: AuthorizationRequest,
  redirectUri: string,
  credentials?: { email: string; password: string },
  consent: 'allow' | 'deny' = 'allow',
): Promise<BrowserResponse> {
  const target = new URL(redirectUri);
  const atCallback = (url: string) => {
    const next = new URL(url);
    return next.origin === target.origin && next.pathname === target.pathname;
  };
  let page = await browser.follow(request.url, atCallback);
  for (let step = 0; step < 4 && page.status === 200; step += 1) {
    if (page.body.includes('name="password"')) {
      if (!credentials) throw new Error('login form shown but no credentials given');
      page = await browser.follow(formAction(page.body, issuer), atCallback, {
        form: { _csrf: hiddenField(page.body, '_csrf'), email: credentials.email, password: credentials.password },
      });
    } else if (page.body.includes('name="decision"')) {
      page = await browser.follow(formAction(page.body, issuer), atCallback, {
        form: { _csrf: hiddenField(page.body, '_csrf'), decision: consent },
      });
    } else {
      break;
    }
  }
  return page;
}

export async function exchangeCode(rp: RelyingParty, request: AuthorizationRequest, callback: string) {
  return oidc.authorizationCodeGrant(rp.config, new URL(callback), {
    pkceCodeVerifier: request.verifier,
    expectedState: request.state,
    expectedNonce: request.nonce,
    idTokenExpected: true,
  });
}

/** The OAuth error code (`invalid_grant`…) a rejected openid-client call carries; fails if it resolved. */
export async function oauthError(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    return String((error as { error?: string }).error ?? error);
  }
  throw new Error('expected an OAuth error');
}
