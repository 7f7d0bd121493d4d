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

const BASE = { service: 'jobswipe-identity' };

let stampedAt = 0;
let stamp = '';
/** pino's isoTime, formatted once per millisecond: a busy server writes many lines within one. */
function isoTime(): string {
  const now = Date.now();
  if (now !== stampedAt) {
    stampedAt = now;
    stamp = `,"time":"${new Date(now).toISOString()}"`;
  }
  return stamp;
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const paths = SECRET_FIELDS.flatMap((field) => [`"${field}"`, `*["${field}"]`, `*.*["${field}"]`]);
  return pino(
    {
      level,
      base: BASE,
      redact: { paths, censor: '[redacted]' },
      timestamp: isoTime,
    },
    destination,
  );
}

/** Lines wait for this many bytes, or for the next periodic flush, before they are written. */
const LOG_BUFFER_BYTES = 4096;
/** The longest a line waits in the buffer, in ms. */
const LOG_FLUSH_MS = 100;

/**
 * Standard output for the server: written asynchronously and in batches (lines collect until 4 KB
 * or 100 ms, whichever comes first), so no request waits on a write to the terminal or a pipe and
 * a busy server makes one write for many lines rather than one each. Flushed on exit; a process
 * killed outright (SIGKILL) loses at most the last 100 ms of lines, never an audit event (those are
 * in the database before their response goes out).
 */
export function serverLogDestination(): pino.DestinationStream & { flushSync(): void } {
  return pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS });
}

/** One line per request, with fixed fields that hold no secret. */
export interface RequestLine {
  requestId: string;
  method: string;
  path: string;
  status: number;
  ms: number;
}

/**
 * The request log: the same stream and level as `log`, without redaction, which walks every logged
 * object for secret fields and costs more than the line itself. Its lines have fixed fields only
 * (never headers, query strings or bodies), so there is nothing to redact.
 */
export function createRequestLog(log: Logger): (line: RequestLine) => void {
  const plain = unredacted(log);
  return (line) => plain.info(line, 'request');
}

/**
 * `log`'s stream and level without redaction, for lines whose fields are known to hold no secret
 * (the request line; an audit event's line once its details keys are checked, audit/record-event.ts).
 */
export function unredacted(log: Logger): Logger {
  const stream = (log as unknown as Record<symbol, DestinationStream>)[pino.symbols.streamSym];
  return pino({ level: log.level, base: BASE, timestamp: isoTime }, stream);
}

export type { Logger };
