import type { NextAuthOptions } from 'next-auth';
import type { JWT } from 'next-auth/jwt';
import type { OAuthConfig } from 'next-auth/providers/oauth';
import { SESSION_MAX_AGE_SECONDS } from './session';
import { settings } from './settings';

interface IdTokenClaims {
  sub: string;
  sid?: string;
  name?: string;
  email?: string;
  acr?: string;
}

/** NextAuth's configuration, built from the settings read at start (never at build time). */
export function authOptions(): NextAuthOptions {
  const current = settings();
  const jobswipe: OAuthConfig<IdTokenClaims> = {
    id: 'jobswipe',
    name: 'JobSwipe',
    type: 'oauth',
    wellKnown: `${current.issuer}/.well-known/openid-configuration`,
    clientId: current.clientId,
    clientSecret: current.clientSecret,
    client: { token_endpoint_auth_method: 'client_secret_basic' },
    // offline_access requires prompt=consent (OpenID Connect Core §11); first-party: no consent screen.
    // entitlements: the plan and its limits, for the dashboard (read from userinfo as it renders).
    authorization: { params: { scope: 'openid profile email offline_access entitlements', prompt: 'consent' } },
    checks: ['pkce', 'state', 'nonce'],
    idToken: true,
    profile: (claims) => ({ id: claims.sub, name: claims.name ?? null, email: claims.email ?? null }),
  };
  return {
    secret: current.secret,
    useSecureCookies: current.secureCookies,
    session: { strategy: 'jwt', maxAge: SESSION_MAX_AGE_SECONDS },
    // Never NextAuth's own pages: sign-in starts from the landing page, which also shows errors.
    pages: { signIn: '/', error: '/', signOut: '/' },
    providers: [jobswipe],
    callbacks: {
      async jwt({ token, account, profile }) {
        if (account) {
          const claims = profile as IdTokenClaims | undefined;
          const signedIn: JWT = {
            ...(claims?.sub ?? token.sub ? { sub: claims?.sub ?? token.sub } : {}),
            name: claims?.name ?? token.name ?? null,
            email: claims?.email ?? token.email ?? null,
            sid: claims?.sid,
            // A new sign-in (a step-up included) replaces the level; a refresh keeps it.
            acr: claims?.acr,
            signedInAt: Date.now(),
            ...(account.access_token ? { accessToken: account.access_token } : {}),
            ...(account.expires_at ? { accessTokenExpiresAt: account.expires_at } : {}),
            ...(account.refresh_token ? { refreshToken: account.refresh_token } : {}),
            idToken: account.id_token,
          };
          return signedIn;
        }
        // Refresh and back-channel logout are the middleware's (middleware.ts): it runs before every
        // page and before this endpoint, and is the one place that may spend a refresh token.
        return token;
      },
      // The browser's view of the session: who is signed in, nothing else.
      async session({ session, token }) {
        return { expires: session.expires, user: { name: token.name ?? null, email: token.email ?? null } };
      },
    },
    logger: {
      error(code, metadata) {
        console.error(`next-auth: ${code}`, metadata);
      },
      warn(code) {
        console.warn(`next-auth: ${code}`);
      },
      debug() {},
    },
  };
}
