import { recordEndedSession } from './ended-sessions';
import { InvalidLogoutToken, verifyLogoutToken } from './logout-token';
import { SESSION_MAX_AGE_SECONDS } from './session';
import type { Settings } from './settings';

/** Where the provider POSTs logout tokens (registered as the client's backchannel_logout_uri). */
export const BACKCHANNEL_LOGOUT_PATH = '/api/backchannel-logout';

const headers = { 'cache-control': 'no-store' };

function invalidRequest(description: string): Response {
  return Response.json({ error: 'invalid_request', error_description: description }, { status: 400, headers });
}

/**
 * OpenID Connect Back-Channel Logout 1.0: verifies the logout token and ends the matching web sessions
 * at once (their next request is signed out). 200 when done, 400 when the request or token is refused.
 */
export async function receiveLogoutToken(settings: Settings, request: Request): Promise<Response> {
  if (request.method !== 'POST') return new Response(null, { status: 405, headers: { ...headers, allow: 'POST' } });
  if (!request.headers.get('content-type')?.startsWith('application/x-www-form-urlencoded')) {
    return invalidRequest('expected application/x-www-form-urlencoded');
  }
  const token = new URLSearchParams(await request.text()).get('logout_token');
  if (!token) return invalidRequest('logout_token is missing');
  try {
    recordEndedSession(await verifyLogoutToken(settings, token), SESSION_MAX_AGE_SECONDS);
    return new Response(null, { status: 200, headers });
  } catch (error) {
    if (error instanceof InvalidLogoutToken) return invalidRequest(`invalid logout token: ${error.message}`);
    throw error;
  }
}
