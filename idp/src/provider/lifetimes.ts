const DAY = 24 * 60 * 60;

/** Token and session lifetimes, in seconds. Access and refresh token lifetimes are product requirements. */
export const LIFETIMES = {
  accessToken: 15 * 60,
  refreshToken: 30 * DAY,
  authorizationCode: 60,
  // RFC 8628: how long a device's user code may be entered.
  deviceCode: 10 * 60,
  idToken: 60 * 60,
  interaction: 60 * 60,
  session: 14 * DAY,
  // A grant bounds the whole chain of rotated refresh tokens.
  grant: 365 * DAY,
} as const;
