import { createHash } from 'node:crypto';
import { discover } from './discovery';
import { processState } from './process-state';
import type { Settings } from './settings';

/** What a refresh gives back: the new access token and the rotated refresh token. */
export interface TokenSet {
  accessToken: string;
  accessTokenExpiresAt: number;
  refreshToken: string;
  idToken?: string | undefined;
}

export type RefreshOutcome = { ok: true; tokens: TokenSet } | { ok: false; revoked: boolean; reason: string };

/** How long a finished refresh answers for the refresh token it spent (a request still carrying the old cookie). */
const SPENT_TOKEN_MEMORY_MS = 2 * 60 * 1000;

interface RefreshState {
  inFlight: Map<string, Promise<RefreshOutcome>>;
  finished: Map<string, { outcome: RefreshOutcome; until: number }>;
}

const state = processState<RefreshState>('refresh', () => ({ inFlight: new Map(), finished: new Map() }));

const keyOf = (refreshToken: string) => createHash('sha256').update(refreshToken).digest('base64url');

/**
 * Spends `refreshToken` at most once in this process. The provider rotates refresh tokens and treats a
 * second use as theft (it revokes the grant) once its reuse grace period (10 s by default) is over, so
 * concurrent requests of one session share one refresh, and requests that arrive with the old cookie
 * after it finished get its result for longer than that. Another instance presenting the same token
 * within the grace period gets the same new tokens from the provider.
 */
export function refreshOnce(settings: Settings, refreshToken: string): Promise<RefreshOutcome> {
  const key = keyOf(refreshToken);
  const now = Date.now();
  for (const [spent, entry] of state.finished) if (entry.until <= now) state.finished.delete(spent);
  const finished = state.finished.get(key);
  if (finished) return Promise.resolve(finished.outcome);
  const running = state.inFlight.get(key);
  if (running) return running;
  const refreshing = refreshAtProvider(settings, refreshToken)
    .then((outcome) => {
      // A transient failure may be retried with the same token; anything else is final.
      if (outcome.ok || outcome.revoked) state.finished.set(key, { outcome, until: Date.now() + SPENT_TOKEN_MEMORY_MS });
      return outcome;
    })
    .finally(() => state.inFlight.delete(key));
  state.inFlight.set(key, refreshing);
  return refreshing;
}

/** RFC 6749 §2.3.1: client_secret_basic form-encodes the id and secret before base64. */
export function basicAuthorization(clientId: string, clientSecret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`;
}

async function refreshAtProvider(settings: Settings, refreshToken: string): Promise<RefreshOutcome> {
  let response: Response;
  try {
    const { metadata } = await discover(settings.issuer);
    response = await fetch(metadata.token_endpoint, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(settings.clientId, settings.clientSecret),
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (error) {
    return { ok: false, revoked: false, reason: `provider unreachable: ${(error as Error).message}` };
  }
  const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
  if (!response.ok) {
    const error = typeof body['error'] === 'string' ? body['error'] : `status ${response.status}`;
    // invalid_grant: the grant was revoked, or the refresh token expired or was already used.
    return { ok: false, revoked: error === 'invalid_grant', reason: error };
  }
  const accessToken = body['access_token'];
  const newRefreshToken = body['refresh_token'];
  const expiresIn = body['expires_in'];
  if (typeof accessToken !== 'string' || typeof newRefreshToken !== 'string' || typeof expiresIn !== 'number') {
    return { ok: false, revoked: false, reason: 'incomplete token response' };
  }
  return {
    ok: true,
    tokens: {
      accessToken,
      accessTokenExpiresAt: Math.floor(Date.now() / 1000) + expiresIn,
      refreshToken: newRefreshToken,
      idToken: typeof body['id_token'] === 'string' ? body['id_token'] : undefined,
    },
  };
}

/**
 * Revokes a refresh token at the provider (RFC 7009), so signing out also disconnects the app: its
 * grant no longer appears under the user's connected apps. Best effort: the answer is logged, never
 * shown, and sign-out goes ahead either way.
 */
export async function revokeRefreshToken(settings: Settings, refreshToken: string): Promise<void> {
  try {
    const { metadata } = await discover(settings.issuer);
    if (!metadata.revocation_endpoint) return;
    const response = await fetch(metadata.revocation_endpoint, {
      method: 'POST',
      headers: {
        authorization: basicAuthorization(settings.clientId, settings.clientSecret),
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: refreshToken, token_type_hint: 'refresh_token' }),
      signal: AbortSignal.timeout(5_000),
    });
    if (!response.ok) console.warn(`sign-out: the provider answered ${response.status} to the refresh token's revocation`);
  } catch (error) {
    console.warn(`sign-out: could not revoke the refresh token: ${(error as Error).message}`);
  }
}
