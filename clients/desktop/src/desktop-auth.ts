import * as oidc from 'openid-client';
import { CallbackError, listenForCallback } from './loopback.ts';
import type { StoredSession, TokenStore } from './token-store.ts';

/** Opens a URL in the user's browser: shell.openExternal in Electron, a real browser in tests. */
export interface BrowserOpener {
  open(url: string): Promise<void>;
}

export interface User {
  sub: string;
  email?: string | undefined;
  name?: string | undefined;
}

export type AuthState =
  | { status: 'signed-in'; user: User; persistent: boolean; notice?: string | undefined }
  | { status: 'signed-out'; persistent: boolean; notice?: string | undefined };

/** A sign-in, refresh or sign-out that did not work; `message` is for the user. */
export class AuthError extends Error {
  readonly code: 'ERR_SIGNED_OUT' | 'ERR_SIGN_IN' | 'ERR_OFFLINE' | 'ERR_TIMEOUT';

  constructor(code: AuthError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

export const SCOPE = 'openid email profile offline_access';
export const GRANT_ENDED = 'Your JobSwipe sign-in has ended (it was revoked or expired). Sign in again.';
export const MEMORY_ONLY = 'This system offers no encryption for stored sign-ins, so you will have to sign in again next time the app starts.';

export interface DesktopAuthOptions {
  issuer: string;
  clientId: string;
  store: TokenStore;
  scope?: string;
  /** Refresh this long before the access token expires. */
  refreshMarginSeconds?: number;
  /** Backoff between refresh attempts that could not reach the provider. */
  retry?: { firstDelayMs: number; maxDelayMs: number; attempts: number };
  /** Called whenever state() changes (Electron tells the window). */
  onChange?: (state: AuthState) => void;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Errors where the request certainly did not reach the provider: retrying cannot spend a token twice. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT']);

function causeCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let current = error, depth = 0; current && depth < 6; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
    const errors = (current as { errors?: unknown }).errors;
    if (Array.isArray(errors)) for (const inner of errors) codes.push(...causeCodes(inner));
    current = (current as { cause?: unknown }).cause;
  }
  return codes;
}

/** The request was never delivered (connection refused, no route, DNS): safe to retry with the same token. */
export function neverReachedProvider(error: unknown): boolean {
  return causeCodes(error).some((code) => NOT_SENT.has(code));
}

/**
 * Our provider refuses a token request with temporarily_unavailable (429, 503) before it looks at
 * the refresh token (idp/src/security/token-limits.ts), so the token is still unspent.
 */
function refusedBeforeReading(error: unknown): boolean {
  return error instanceof oidc.ResponseBodyError && error.error === 'temporarily_unavailable';
}

function isInvalidGrant(error: unknown): boolean {
  return error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant';
}

/** Development issuers on this machine may be http; anything else must be https. */
function isLocalIssuer(issuer: URL): boolean {
  return issuer.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(issuer.hostname);
}

/**
 * The desktop app's sign-in, independent of Electron: authorization code + PKCE through the system
 * browser and a loopback redirect (RFC 8252), the device authorization grant (RFC 8628), refresh
 * token rotation, and revocation at sign-out (RFC 7009).
 */
export class DesktopAuth {
  readonly #options: Required<Omit<DesktopAuthOptions, 'onChange'>> & Pick<DesktopAuthOptions, 'onChange'>;
  #config: oidc.Configuration | undefined;
  #session: StoredSession | undefined;
  #notice: string | undefined;
  #refreshing: Promise<StoredSession> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #background = false;

  constructor(options: DesktopAuthOptions) {
    this.#options = {
      scope: SCOPE,
      refreshMarginSeconds: 60,
      retry: { firstDelayMs: 1_000, maxDelayMs: 60_000, attempts: 6 },
      ...options,
    };
    if (!options.store.persistent) this.#notice = MEMORY_ONLY;
  }

  /** Reads the stored session (no network). */
  async load(): Promise<AuthState> {
    const stored = await this.#options.store.load();
    this.#session = stored && stored.issuer === this.#options.issuer && stored.clientId === this.#options.clientId ? stored : undefined;
    this.#changed();
    return this.state();
  }

  state(): AuthState {
    const persistent = this.#options.store.persistent;
    const notice = this.#notice;
    return this.#session
      ? { status: 'signed-in', user: this.#session.user, persistent, ...(notice ? { notice } : {}) }
      : { status: 'signed-out', persistent, ...(notice ? { notice } : {}) };
  }

  user(): User | undefined {
    return this.#session?.user;
  }

  /** The newest refresh token: for tests and diagnostics only, never for a renderer. */
  currentRefreshToken(): string | undefined {
    return this.#session?.refreshToken;
  }

  async configuration(): Promise<oidc.Configuration> {
    if (!this.#config) {
      const issuer = new URL(this.#options.issuer);
      this.#config = await oidc.discovery(issuer, this.#options.clientId, undefined, oidc.None(), {
        ...(isLocalIssuer(issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    }
    return this.#config;
  }

  /**
   * Signs in through the browser: a loopback listener for the redirect, PKCE (S256), state and
   * nonce. `onUrl` sees the authorization URL before the browser is asked to open it.
   */
  async signIn(options: { opener?: BrowserOpener | undefined; onUrl?: (url: string) => void; timeoutMs?: number; signal?: AbortSignal }): Promise<User> {
    const config = await this.configuration();
    const state = oidc.randomState();
    const nonce = oidc.randomNonce();
    const verifier = oidc.randomPKCECodeVerifier();
    const listener = await listenForCallback({ expectedState: state, timeoutMs: options.timeoutMs ?? 5 * 60_000, ...(options.signal ? { signal: options.signal } : {}) });
    try {
      const url = oidc.buildAuthorizationUrl(config, {
        redirect_uri: listener.redirectUri,
        scope: this.#options.scope,
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
        return await this.#signedIn(tokens);
      } catch (error) {
        if (error instanceof AuthError) throw error;
        throw new AuthError('ERR_SIGN_IN', `Sign-in failed: ${describe(error)}.`, { cause: error });
      }
    } finally {
      await listener.close();
    }
  }

  /** The device authorization grant (RFC 8628): `onCode` shows the user where to go and what to enter. */
  async signInWithDevice(options: {
    onCode: (prompt: { verificationUri: string; verificationUriComplete?: string | undefined; userCode: string; expiresIn: number }) => void | Promise<void>;
    signal?: AbortSignal;
  }): Promise<User> {
    const config = await this.configuration();
    const device = await oidc.initiateDeviceAuthorization(config, { scope: this.#options.scope });
    await options.onCode({
      verificationUri: device.verification_uri,
      verificationUriComplete: device.verification_uri_complete,
      userCode: device.user_code,
      expiresIn: device.expires_in,
    });
    try {
      const tokens = await oidc.pollDeviceAuthorizationGrant(config, device, undefined, options.signal ? { signal: options.signal } : {});
      return await this.#signedIn(tokens);
    } catch (error) {
      if (error instanceof AuthError) throw error;
      if (error instanceof oidc.ResponseBodyError && error.error === 'expired_token') {
        throw new AuthError('ERR_TIMEOUT', 'Sign-in timed out: the code expired before it was entered.', { cause: error });
      }
      if ((error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError') {
        throw new AuthError('ERR_TIMEOUT', 'Sign-in timed out: the code was not entered in time.', { cause: error });
      }
      throw new AuthError('ERR_SIGN_IN', `Sign-in failed: ${describe(error)}.`, { cause: error });
    }
  }

  /** A current access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const session = this.#session;
    if (!session) throw new AuthError('ERR_SIGNED_OUT', 'You are signed out.');
    if (session.accessToken && (session.accessTokenExpiresAt ?? 0) - this.#options.refreshMarginSeconds > nowSeconds()) return session.accessToken;
    const refreshed = await this.refresh();
    if (!refreshed.accessToken) throw new AuthError('ERR_SIGN_IN', 'The provider returned no access token.');
    return refreshed.accessToken;
  }

  /**
   * Redeems the refresh token for new tokens. Single-flight: concurrent callers share one request,
   * so a refresh token (rotated on every use) is never presented twice. A request that could not
   * reach the provider is retried with backoff; a revoked grant signs the app out with a message.
   */
  refresh(): Promise<StoredSession> {
    this.#refreshing ??= this.#refreshWithRetry().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refreshWithRetry(): Promise<StoredSession> {
    const { retry } = this.#options;
    let delay = retry.firstDelayMs;
    for (let attempt = 1; ; attempt += 1) {
      const session = this.#session;
      if (!session) throw new AuthError('ERR_SIGNED_OUT', 'You are signed out.');
      try {
        const config = await this.configuration();
        const tokens = await oidc.refreshTokenGrant(config, session.refreshToken);
        return await this.#store(tokens, session);
      } catch (error) {
        if (isInvalidGrant(error)) {
          await this.#signedOut(GRANT_ENDED);
          throw new AuthError('ERR_SIGNED_OUT', GRANT_ENDED, { cause: error });
        }
        const retryable = neverReachedProvider(error) || refusedBeforeReading(error) || !this.#config;
        if (!retryable) {
          // The provider may have received the token and rotated it: presenting it again would be
          // a reuse, which revokes the whole grant. Ask for a new sign-in instead.
          const message = `Your sign-in could not be renewed (${describe(error)}). Sign in again.`;
          await this.#signedOut(message);
          throw new AuthError('ERR_SIGNED_OUT', message, { cause: error });
        }
        if (attempt >= retry.attempts) throw new AuthError('ERR_OFFLINE', `JobSwipe cannot be reached (${describe(error)}); still signed in, will retry.`, { cause: error });
        await sleep(delay);
        delay = Math.min(delay * 2, retry.maxDelayMs);
      }
    }
  }

  /** Refreshes in the background shortly before the access token expires (Electron keeps this on). */
  startBackgroundRefresh(): void {
    this.#background = true;
    this.#schedule();
  }

  stopBackgroundRefresh(): void {
    this.#background = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const session = this.#session;
    if (!this.#background || !session) return;
    const due = ((session.accessTokenExpiresAt ?? 0) - this.#options.refreshMarginSeconds - nowSeconds()) * 1000;
    this.#timer = setTimeout(() => {
      this.refresh().catch((error: unknown) => {
        // Offline: try again later; signed out: #signedOut already told the app.
        if (error instanceof AuthError && error.code === 'ERR_OFFLINE') {
          this.#timer = setTimeout(() => this.#schedule(), this.#options.retry.maxDelayMs);
          this.#timer.unref?.();
        }
      });
    }, Math.max(0, due));
    this.#timer.unref?.();
  }

  /**
   * Revokes the refresh token at the provider (which ends the grant), then forgets everything
   * locally, even when the provider cannot be reached. `endBrowserSession` also opens the
   * provider's sign-out page, ending the browser's JobSwipe session.
   */
  async signOut(options: { endBrowserSession?: BrowserOpener | undefined } = {}): Promise<{ revoked: boolean }> {
    await this.#refreshing?.catch(() => undefined);
    const session = this.#session;
    let revoked = false;
    if (session) {
      try {
        const config = await this.configuration();
        await oidc.tokenRevocation(config, session.refreshToken, { token_type_hint: 'refresh_token' });
        revoked = true;
      } catch {
        revoked = false;
      }
      if (options.endBrowserSession && session.idToken) {
        const config = await this.configuration().catch(() => undefined);
        if (config) await options.endBrowserSession.open(oidc.buildEndSessionUrl(config, { id_token_hint: session.idToken }).toString());
      }
    }
    await this.#signedOut(revoked || !session ? undefined : 'Signed out on this device; JobSwipe could not be reached to revoke the sign-in.');
    return { revoked };
  }

  async #signedIn(tokens: oidc.TokenEndpointResponse & oidc.TokenEndpointResponseHelpers): Promise<User> {
    const claims = tokens.claims();
    if (!claims) throw new AuthError('ERR_SIGN_IN', 'Sign-in failed: the provider returned no ID token.');
    if (!tokens.refresh_token) throw new AuthError('ERR_SIGN_IN', 'Sign-in failed: the provider returned no refresh token (is offline_access allowed for this client?).');
    const user: User = {
      sub: claims.sub,
      ...(typeof claims['email'] === 'string' ? { email: claims['email'] } : {}),
      ...(typeof claims['name'] === 'string' ? { name: claims['name'] } : {}),
    };
    await this.#store(tokens, undefined, user);
    return user;
  }

  /** Persists the new tokens before anything uses them: a rotated refresh token must not be lost. */
  async #store(tokens: oidc.TokenEndpointResponse, previous: StoredSession | undefined, user?: User): Promise<StoredSession> {
    const refreshToken = tokens.refresh_token ?? previous?.refreshToken;
    if (!refreshToken) throw new AuthError('ERR_SIGN_IN', 'The provider returned no refresh token.');
    const next: StoredSession = {
      version: 1,
      issuer: this.#options.issuer,
      clientId: this.#options.clientId,
      refreshToken,
      accessToken: tokens.access_token,
      ...(tokens.expires_in !== undefined ? { accessTokenExpiresAt: nowSeconds() + tokens.expires_in } : {}),
      ...(tokens.id_token ?? previous?.idToken ? { idToken: (tokens.id_token ?? previous?.idToken) as string } : {}),
      user: user ?? previous?.user ?? { sub: '' },
    };
    // Kept in memory whatever happens to the write: the old refresh token is spent already.
    this.#session = next;
    try {
      await this.#options.store.save(next);
    } finally {
      this.#changed();
      this.#schedule();
    }
    return next;
  }

  async #signedOut(notice: string | undefined): Promise<void> {
    this.#session = undefined;
    this.#notice = notice ?? (this.#options.store.persistent ? undefined : MEMORY_ONLY);
    this.#schedule();
    await this.#options.store.clear();
    this.#changed();
  }

  #changed(): void {
    this.#options.onChange?.(this.state());
  }
}

function describe(error: unknown): string {
  if (error instanceof oidc.ResponseBodyError) return error.error_description ? `${error.error}: ${error.error_description}` : error.error;
  return error instanceof Error ? error.message : String(error);
}
