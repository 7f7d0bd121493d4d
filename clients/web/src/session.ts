import type { JWT } from 'next-auth/jwt';
import { isSessionEnded } from './ended-sessions';
import { refreshOnce } from './refresh';
import type { Settings } from './settings';

declare module 'next-auth/jwt' {
  /** The encrypted session cookie's contents. The tokens never leave the server. */
  interface JWT {
    sid?: string | undefined;
    /** When the user signed in to this app (ms since the epoch). */
    signedInAt?: number;
    accessToken?: string;
    /** Seconds since the epoch. */
    accessTokenExpiresAt?: number;
    refreshToken?: string;
    idToken?: string | undefined;
    /** The level of the sign-in behind the session (the ID token's acr): billing needs two factors (step-up.ts). */
    acr?: string | undefined;
  }
}

/** A web session lives at most this long; the refresh token (30 days) bounds it anyway. */
export const SESSION_MAX_AGE_SECONDS = 30 * 24 * 60 * 60;

/** Why a web session ended without the user pressing "Sign out"; shown on the landing page. */
export type EndReason = 'signed-out-elsewhere' | 'access-revoked';

export type SessionCheck =
  | { state: 'current'; token: JWT }
  | { state: 'refreshed'; token: JWT }
  | { state: 'ended'; reason: EndReason };

/**
 * Decides what a request's session is: ended by back-channel logout, current, or due for a refresh
 * (then refreshed, once per refresh token). A transient refresh failure keeps the session as it is.
 */
export async function checkSession(settings: Settings, token: JWT): Promise<SessionCheck> {
  if (isSessionEnded({ sid: token.sid, sub: token.sub, signedInAt: token.signedInAt ?? 0 })) {
    return { state: 'ended', reason: 'signed-out-elsewhere' };
  }
  const now = Math.floor(Date.now() / 1000);
  if (!token.refreshToken || (token.accessTokenExpiresAt ?? 0) - now > settings.refreshSkewSeconds) {
    return { state: 'current', token };
  }
  const outcome = await refreshOnce(settings, token.refreshToken);
  if (!outcome.ok) {
    if (outcome.revoked) return { state: 'ended', reason: 'access-revoked' };
    console.warn(`jobswipe-web: token refresh failed, will retry: ${outcome.reason}`);
    return { state: 'current', token };
  }
  const { tokens } = outcome;
  return {
    state: 'refreshed',
    token: {
      ...token,
      accessToken: tokens.accessToken,
      accessTokenExpiresAt: tokens.accessTokenExpiresAt,
      refreshToken: tokens.refreshToken,
      idToken: tokens.idToken ?? token.idToken,
    },
  };
}

/** NextAuth's name for the session cookie (the __Secure- prefix comes with https). */
export function sessionCookieName(settings: Settings): string {
  return settings.secureCookies ? '__Secure-next-auth.session-token' : 'next-auth.session-token';
}

export function sessionCookieOptions(settings: Settings) {
  return {
    httpOnly: true,
    sameSite: 'lax' as const,
    secure: settings.secureCookies,
    path: '/',
    maxAge: SESSION_MAX_AGE_SECONDS,
  };
}

/** The session cookie and any chunks NextAuth split it into (`name.0`, `name.1`...). */
export function sessionCookieNames(settings: Settings, present: string[]): string[] {
  const name = sessionCookieName(settings);
  return present.filter((cookie) => cookie === name || cookie.startsWith(`${name}.`));
}
