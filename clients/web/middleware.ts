import { NextResponse, type NextRequest } from 'next/server';
import { encode, getToken } from 'next-auth/jwt';
import { BACKCHANNEL_LOGOUT_PATH, receiveLogoutToken } from './src/backchannel-logout';
import { checkSession, sessionCookieName, sessionCookieNames, sessionCookieOptions, SESSION_MAX_AGE_SECONDS } from './src/session';
import { settings } from './src/settings';

/**
 * Every page request (and NextAuth's session endpoint) passes here first: a session ended by
 * back-channel logout or by a revoked grant is signed out, and a token due for refresh is refreshed.
 * Pages cannot set cookies while rendering, so the rotated refresh token is written here, to the
 * browser and to the request the page sees.
 *
 * Next runs this middleware apart from the route handlers (its module state is not theirs), so the
 * back-channel logout endpoint is served here too: the record of ended sessions and the refresh
 * single-flight live in one place.
 */
export async function middleware(request: NextRequest): Promise<Response> {
  const current = settings();
  if (request.nextUrl.pathname === BACKCHANNEL_LOGOUT_PATH) return receiveLogoutToken(current, request);

  const token = await getToken({ req: request, secret: current.secret, secureCookie: current.secureCookies });
  if (!token) return NextResponse.next();
  const check = await checkSession(current, token);
  if (check.state === 'current') return NextResponse.next();

  const name = sessionCookieName(current);
  const present = sessionCookieNames(current, request.cookies.getAll().map((cookie) => cookie.name));
  if (check.state === 'refreshed') {
    const value = await encode({ token: check.token, secret: current.secret, maxAge: SESSION_MAX_AGE_SECONDS });
    for (const cookie of present) request.cookies.delete(cookie);
    request.cookies.set(name, value);
    const response = NextResponse.next({ request: { headers: request.headers } });
    for (const cookie of present) if (cookie !== name) response.cookies.delete(cookie);
    response.cookies.set(name, value, sessionCookieOptions(current));
    return response;
  }

  // Ended: pages go to the landing page with the reason; the session endpoint answers "no session".
  const landing = new URL('/', current.baseUrl);
  landing.searchParams.set('notice', check.reason);
  const response = request.nextUrl.pathname.startsWith('/api/') ? NextResponse.json({}) : NextResponse.redirect(landing, 303);
  for (const cookie of present) response.cookies.set(cookie, '', { ...sessionCookieOptions(current), maxAge: 0 });
  return response;
}

export const config = {
  runtime: 'nodejs',
  matcher: ['/((?!api/|_next/static|_next/image|favicon.ico).*)', '/api/auth/session', '/api/backchannel-logout'],
};
