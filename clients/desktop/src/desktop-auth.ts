import * as oidc from 'openid-client';
import { signInThroughBrowser, type BrowserSignInOptions } from './browser-sign-in.ts';
import { signInWithDeviceCode, type DeviceSignInOptions } from './device-sign-in.ts';
import { TokenRefresher, type RefreshPolicy } from './refresh.ts';
import { SessionState, type AuthState, type User } from './session-state.ts';
import type { StoredSession, TokenStore } from './token-store.ts';

export { AuthError } from './auth-error.ts';
export type { BrowserOpener } from './browser-sign-in.ts';
export { GRANT_ENDED, neverReachedProvider } from './refresh.ts';
export { MEMORY_ONLY, type AuthState, type User } from './session-state.ts';

export const SCOPE = 'openid email profile offline_access';

export interface DesktopAuthOptions extends Partial<RefreshPolicy> {
  issuer: string;
  clientId: string;
  store: TokenStore;
  scope?: string;
  /** Called whenever state() changes (Electron tells the window). */
  onChange?: (state: AuthState) => void;
}

/** Development issuers on this machine may be http; anything else must be https. */
function isLocalIssuer(issuer: URL): boolean {
  return issuer.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(issuer.hostname);
}

/**
 * The desktop app's sign-in, independent of Electron: browser sign-in (browser-sign-in.ts), device
 * sign-in (device-sign-in.ts), refresh token rotation (refresh.ts) and the session (session-state.ts),
 * plus discovery and revocation at sign-out (RFC 7009).
 */
export class DesktopAuth {
  readonly #issuer: string;
  readonly #clientId: string;
  readonly #scope: string;
  readonly #session: SessionState;
  readonly #refresher: TokenRefresher;
  #config: oidc.Configuration | undefined;

  constructor(options: DesktopAuthOptions) {
    this.#issuer = options.issuer;
    this.#clientId = options.clientId;
    this.#scope = options.scope ?? SCOPE;
    this.#session = new SessionState({
      issuer: options.issuer,
      clientId: options.clientId,
      store: options.store,
      onChange: options.onChange,
      onSessionReplaced: () => this.#refresher.schedule(),
    });
    this.#refresher = new TokenRefresher(this.#session, () => this.configuration(), {
      refreshMarginSeconds: options.refreshMarginSeconds ?? 60,
      retry: options.retry ?? { firstDelayMs: 1_000, maxDelayMs: 60_000, attempts: 6 },
    });
  }

  /** Reads the stored session (no network). */
  load(): Promise<AuthState> {
    return this.#session.load();
  }

  state(): AuthState {
    return this.#session.state();
  }

  user(): User | undefined {
    return this.#session.current?.user;
  }

  /** The newest refresh token: for tests and diagnostics only, never for a renderer. */
  currentRefreshToken(): string | undefined {
    return this.#session.current?.refreshToken;
  }

  async configuration(): Promise<oidc.Configuration> {
    if (!this.#config) {
      const issuer = new URL(this.#issuer);
      this.#config = await oidc.discovery(issuer, this.#clientId, undefined, oidc.None(), {
        ...(isLocalIssuer(issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
      });
    }
    return this.#config;
  }

  /** Signs in through the browser (code + PKCE, loopback redirect). */
  async signIn(options: BrowserSignInOptions): Promise<User> {
    return signInThroughBrowser(await this.configuration(), this.#scope, options, (tokens) => this.#session.signedIn(tokens));
  }

  /** The device authorization grant (RFC 8628): `onCode` shows the user where to go and what to enter. */
  async signInWithDevice(options: DeviceSignInOptions): Promise<User> {
    return signInWithDeviceCode(await this.configuration(), this.#scope, options, (tokens) => this.#session.signedIn(tokens));
  }

  /** A current access token, refreshed first when it is about to expire. */
  accessToken(): Promise<string> {
    return this.#refresher.accessToken();
  }

  refresh(): Promise<StoredSession> {
    return this.#refresher.refresh();
  }

  startBackgroundRefresh(): void {
    this.#refresher.startBackgroundRefresh();
  }

  stopBackgroundRefresh(): void {
    this.#refresher.stopBackgroundRefresh();
  }

  /**
   * Revokes the refresh token at the provider (which ends the grant), then forgets everything
   * locally, even when the provider cannot be reached. `endBrowserSession` also opens the
   * provider's sign-out page, ending the browser's JobSwipe session.
   */
  async signOut(options: { endBrowserSession?: BrowserSignInOptions['opener'] } = {}): Promise<{ revoked: boolean }> {
    await this.#refresher.settled();
    const session = this.#session.current;
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
    await this.#session.signedOut(revoked || !session ? undefined : 'Signed out on this device; JobSwipe could not be reached to revoke the sign-in.');
    return { revoked };
  }
}
