import pino, { type DestinationStream, type Logger } from 'pino';

/** Fields that must never reach a log line, wherever they appear in a logged object. */
const SECRET_FIELDS = [
  'authorization',
  'cookie',
  'set-cookie',
  'password',
  'password_hash',
  'client_secret',
  'code',
  'code_verifier',
  'access_token',
  'refresh_token',
  'id_token',
  'token',
  'private_jwk',
];

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const paths = SECRET_FIELDS.flatMap((field) => [`"${field}"`, `*["${field}"]`, `*.*["${field}"]`]);
  return pino(
    {
      level,
      base: { service: 'jobswipe-identity' },
      redact: { paths, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

export type { Logger };
