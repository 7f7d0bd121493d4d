import { errors, jwtVerify, type JWTPayload } from 'jose';
import { discover } from './discovery';
import type { Settings } from './settings';

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

/** How old (or how far in the future, for clock skew) a logout token's iat may be. */
const MAX_AGE_SECONDS = 5 * 60;
const CLOCK_TOLERANCE_SECONDS = 60;

export class InvalidLogoutToken extends Error {
  override name = 'InvalidLogoutToken';
}

/** The claims of a verified logout token: whose session(s) to end. */
export interface LogoutClaims {
  sub?: string | undefined;
  sid?: string | undefined;
}

/** Validates a logout token as OpenID Connect Back-Channel Logout 1.0 §2.6 asks. */
export async function verifyLogoutToken(settings: Settings, token: string): Promise<LogoutClaims> {
  const { metadata, jwks } = await discover(settings.issuer);
  let payload: JWTPayload;
  try {
    const verified = await jwtVerify(token, jwks, {
      issuer: metadata.issuer,
      audience: settings.clientId,
      algorithms: ['RS256'],
      requiredClaims: ['iat'],
      maxTokenAge: MAX_AGE_SECONDS,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
    });
    payload = verified.payload;
    const typ = verified.protectedHeader.typ?.toLowerCase();
    if (typ !== undefined && typ !== 'logout+jwt' && typ !== 'application/logout+jwt') {
      throw new InvalidLogoutToken(`typ ${typ} is not logout+jwt`);
    }
  } catch (error) {
    if (error instanceof InvalidLogoutToken) throw error;
    // A JWKS that cannot be fetched is our problem (500), anything else the token's (400).
    if (error instanceof errors.JWKSTimeout) throw error;
    throw new InvalidLogoutToken((error as Error).message);
  }
  if (payload.iat! > Math.floor(Date.now() / 1000) + CLOCK_TOLERANCE_SECONDS) throw new InvalidLogoutToken('iat is in the future');
  const events = payload['events'];
  const event = events && typeof events === 'object' ? (events as Record<string, unknown>)[BACKCHANNEL_LOGOUT_EVENT] : undefined;
  if (!event || typeof event !== 'object') throw new InvalidLogoutToken('events has no back-channel logout event');
  if ('nonce' in payload) throw new InvalidLogoutToken('a logout token must not have a nonce');
  const sid = typeof payload['sid'] === 'string' ? payload['sid'] : undefined;
  const sub = typeof payload.sub === 'string' ? payload.sub : undefined;
  if (!sid && !sub) throw new InvalidLogoutToken('neither sid nor sub');
  return { sid, sub };
}
