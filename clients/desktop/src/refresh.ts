import * as oidc from 'openid-client';
import { AuthError, describeAuthFailure } from './auth-error.ts';
import { nowSeconds, type SessionState } from './session-state.ts';
import type { StoredSession } from './token-store.ts';

export const GRANT_ENDED = 'Your JobSwipe sign-in has ended (it was revoked or expired). Sign in again.';

export interface RefreshPolicy {
  /** Refresh this long before the access token expires. */
  refreshMarginSeconds: number;
  /** Backoff between refresh attempts that could not reach the provider. */
  retry: { firstDelayMs: number; maxDelayMs: number; attempts: number };
}

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

/**
 * Refresh token rotation: single-flight redemption with backoff while the provider cannot be
 * reached, a sign-out with a message when the grant has ended, and an optional background timer.
 */
export class TokenRefresher {
  readonly #session: SessionState;
  readonly #configuration: () => Promise<oidc.Configuration>;
  readonly #policy: RefreshPolicy;
  #refreshing: Promise<StoredSession> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #background = false;

  constructor(session: SessionState, configuration: () => Promise<oidc.Configuration>, policy: RefreshPolicy) {
    this.#session = session;
    this.#configuration = configuration;
    this.#policy = policy;
  }

  /** A current access token, refreshed first when it is about to expire. */
  async accessToken(): Promise<string> {
    const session = this.#session.current;
    if (!session) throw new AuthError('ERR_SIGNED_OUT', 'You are signed out.');
    if (session.accessToken && (session.accessTokenExpiresAt ?? 0) - this.#policy.refreshMarginSeconds > nowSeconds()) return session.accessToken;
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

  /** Waits for a refresh in flight (its outcome ignored), so a sign-out revokes the newest token. */
  async settled(): Promise<void> {
    await this.#refreshing?.catch(() => undefined);
  }

  async #refreshWithRetry(): Promise<StoredSession> {
    const { retry } = this.#policy;
    let delay = retry.firstDelayMs;
    for (let attempt = 1; ; attempt += 1) {
      const session = this.#session.current;
      if (!session) throw new AuthError('ERR_SIGNED_OUT', 'You are signed out.');
      let config: oidc.Configuration | undefined;
      try {
        config = await this.#configuration();
        const tokens = await oidc.refreshTokenGrant(config, session.refreshToken);
        return await this.#session.save(tokens, session);
      } catch (error) {
        if (isInvalidGrant(error)) {
          await this.#session.signedOut(GRANT_ENDED);
          throw new AuthError('ERR_SIGNED_OUT', GRANT_ENDED, { cause: error });
        }
        // Without a configuration (discovery failed) the token was never sent either.
        const retryable = neverReachedProvider(error) || refusedBeforeReading(error) || !config;
        if (!retryable) {
          // The provider may have received the token and rotated it: presenting it again would be
          // a reuse, which revokes the whole grant. Ask for a new sign-in instead.
          const message = `Your sign-in could not be renewed (${describeAuthFailure(error)}). Sign in again.`;
          await this.#session.signedOut(message);
          throw new AuthError('ERR_SIGNED_OUT', message, { cause: error });
        }
        if (attempt >= retry.attempts) throw new AuthError('ERR_OFFLINE', `JobSwipe cannot be reached (${describeAuthFailure(error)}); still signed in, will retry.`, { cause: error });
        await sleep(delay);
        delay = Math.min(delay * 2, retry.maxDelayMs);
      }
    }
  }

  /** Refreshes in the background shortly before the access token expires (Electron keeps this on). */
  startBackgroundRefresh(): void {
    this.#background = true;
    this.schedule();
  }

  stopBackgroundRefresh(): void {
    this.#background = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** (Re)arms the background timer for the current session; called whenever the session changes. */
  schedule(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const session = this.#session.current;
    if (!this.#background || !session) return;
    const due = ((session.accessTokenExpiresAt ?? 0) - this.#policy.refreshMarginSeconds - nowSeconds()) * 1000;
    this.#timer = setTimeout(() => {
      this.refresh().catch((error: unknown) => {
        // Offline: try again later; signed out: signedOut already told the app.
        if (error instanceof AuthError && error.code === 'ERR_OFFLINE') {
          this.#timer = setTimeout(() => this.schedule(), this.#policy.retry.maxDelayMs);
          this.#timer.unref?.();
        }
      });
    }, Math.max(0, due));
    this.#timer.unref?.();
  }
}
