import type * as oidc from 'openid-client';
import { AuthError } from './auth-error.ts';
import type { SignInTokens } from './browser-sign-in.ts';
import type { StoredSession, TokenStore } from './token-store.ts';

export interface User {
  sub: string;
  email?: string | undefined;
  name?: string | undefined;
}

export type AuthState =
  | { status: 'signed-in'; user: User; persistent: boolean; notice?: string | undefined }
  | { status: 'signed-out'; persistent: boolean; notice?: string | undefined };

export const MEMORY_ONLY = 'This system offers no encryption for stored sign-ins, so you will have to sign in again next time the app starts.';

export const nowSeconds = () => Math.floor(Date.now() / 1000);

export interface SessionStateOptions {
  issuer: string;
  clientId: string;
  store: TokenStore;
  /** Called whenever state() changes (Electron tells the window). */
  onChange?: ((state: AuthState) => void) | undefined;
  /** Called whenever the session is replaced or ends, so a background refresh can be rescheduled. */
  onSessionReplaced: () => void;
}

/**
 * The signed-in session of this issuer and client: kept in memory, persisted through the token
 * store before anything uses it, and reported as an AuthState.
 */
export class SessionState {
  readonly #options: SessionStateOptions;
  #session: StoredSession | undefined;
  #notice: string | undefined;

  constructor(options: SessionStateOptions) {
    this.#options = options;
    if (!options.store.persistent) this.#notice = MEMORY_ONLY;
  }

  get current(): StoredSession | undefined {
    return this.#session;
  }

  /** Reads the stored session (no network); one of another issuer or client is ignored. */
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

  /** A fresh sign-in: needs an ID token (who signed in) and a refresh token (to stay signed in). */
  async signedIn(tokens: SignInTokens): Promise<User> {
    const claims = tokens.claims();
    if (!claims) throw new AuthError('ERR_SIGN_IN', 'Sign-in failed: the provider returned no ID token.');
    if (!tokens.refresh_token) throw new AuthError('ERR_SIGN_IN', 'Sign-in failed: the provider returned no refresh token (is offline_access allowed for this client?).');
    const user: User = {
      sub: claims.sub,
      ...(typeof claims['email'] === 'string' ? { email: claims['email'] } : {}),
      ...(typeof claims['name'] === 'string' ? { name: claims['name'] } : {}),
    };
    await this.save(tokens, undefined, user);
    return user;
  }

  /** Persists the new tokens before anything uses them: a rotated refresh token must not be lost. */
  async save(tokens: oidc.TokenEndpointResponse, previous: StoredSession | undefined, user?: User): Promise<StoredSession> {
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
      this.#options.onSessionReplaced();
    }
    return next;
  }

  /** Forgets the session locally; `notice` tells the user why (none after a plain sign-out). */
  async signedOut(notice: string | undefined): Promise<void> {
    this.#session = undefined;
    this.#notice = notice ?? (this.#options.store.persistent ? undefined : MEMORY_ONLY);
    this.#options.onSessionReplaced();
    await this.#options.store.clear();
    this.#changed();
  }

  #changed(): void {
    this.#options.onChange?.(this.state());
  }
}
