import * as oidc from 'openid-client';
import { AuthError, describeAuthFailure } from './auth-error.ts';
import { CallbackError, listenForCallback } from './loopback.ts';

/** Opens a URL in the user's browser: shell.openExternal in Electron, a real browser in tests. */
export interface BrowserOpener {
  open(url: string): Promise<void>;
}

export interface BrowserSignInOptions {
  opener?: BrowserOpener | undefined;
  onUrl?: (url: string) => void;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type SignInTokens = oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers;

/**
 * Authorization code + PKCE (S256) through the system browser and a loopback redirect (RFC 8252),
 * with state and nonce. `onUrl` sees the authorization URL before the browser is asked to open it.
 * `accept` runs while the listener is still open, so its errors are reported as sign-in failures.
 */
export async function signInThroughBrowser<T>(
  config: oidc.Configuration,
  scope: string,
  options: BrowserSignInOptions,
  accept: (tokens: SignInTokens) => Promise<T>,
): Promise<T> {
  const state = oidc.randomState();
  const nonce = oidc.randomNonce();
  const verifier = oidc.randomPKCECodeVerifier();
  const listener = await listenForCallback({ expectedState: state, timeoutMs: options.timeoutMs ?? 5 * 60_000, ...(options.signal ? { signal: options.signal } : {}) });
  try {
    const url = oidc.buildAuthorizationUrl(config, {
      redirect_uri: listener.redirectUri,
      scope,
      code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      // OpenID Connect Core §11: offline_access (the refresh token) is granted only with prompt=consent.
      prompt: 'consent',
    }).toString();
    options.onUrl?.(url);
    await options.opener?.open(url);
    let callback: URL;
    try {
      callback = await listener.callback;
    } catch (error) {
      if (error instanceof CallbackError && error.code === 'ERR_CALLBACK_TIMEOUT') throw new AuthError('ERR_TIMEOUT', `Sign-in timed out: ${error.message}.`, { cause: error });
      throw new AuthError('ERR_SIGN_IN', `Sign-in failed: ${(error as Error).message}.`, { cause: error });
    }
    try {
      const tokens = await oidc.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: verifier,
        expectedState: state,
        expectedNonce: nonce,
        idTokenExpected: true,
      });
      return await accept(tokens);
    } catch (error) {
      if (error instanceof AuthError) throw error;
      throw new AuthError('ERR_SIGN_IN', `Sign-in failed: ${describeAuthFailure(error)}.`, { cause: error });
    }
  } finally {
    await listener.close();
  }
}
