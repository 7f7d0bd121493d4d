import { getToken } from 'next-auth/jwt';
import { NextResponse, type NextRequest } from 'next/server';
import { discover } from '../../../src/discovery';
import { revokeRefreshToken } from '../../../src/refresh';
import { sessionCookieNames, sessionCookieOptions } from '../../../src/session';
import { settings } from '../../../src/settings';

export const dynamic = 'force-dynamic';

/**
 * "Sign out": revokes the session's refresh token (the app is disconnected, not only signed out),
 * drops the web session and sends the browser to the provider's end-session endpoint (RP-initiated
 * logout), which ends the provider session and returns to the landing page.
 */
export async function POST(request: NextRequest): Promise<NextResponse> {
  const current = settings();
  const origin = request.headers.get('origin');
  // SameSite=Lax already keeps the cookie off cross-site POSTs; refuse them outright too.
  if (origin !== null && origin !== new URL(current.baseUrl).origin) {
    return NextResponse.json({ error: 'forbidden', error_description: 'cross-origin sign-out' }, { status: 403 });
  }
  const token = await getToken({ req: request, secret: current.secret, secureCookie: current.secureCookies });
  const landing = `${current.baseUrl}/`;
  let target = landing;
  if (token?.refreshToken) await revokeRefreshToken(current, token.refreshToken);
  if (token?.idToken) {
    const { metadata } = await discover(current.issuer);
    if (metadata.end_session_endpoint) {
      const endSession = new URL(metadata.end_session_endpoint);
      endSession.searchParams.set('id_token_hint', token.idToken);
      endSession.searchParams.set('post_logout_redirect_uri', landing);
      endSession.searchParams.set('client_id', current.clientId);
      target = endSession.toString();
    }
  }
  const response = NextResponse.redirect(target, 303);
  for (const name of sessionCookieNames(current, request.cookies.getAll().map((cookie) => cookie.name))) {
    response.cookies.set(name, '', { ...sessionCookieOptions(current), maxAge: 0 });
  }
  response.headers.set('cache-control', 'no-store');
  return response;
}
