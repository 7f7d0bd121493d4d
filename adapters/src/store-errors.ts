import { errors } from 'oidc-provider';

/**
 * A store (Postgres or Redis) could not answer in time, or at all: the request fails fast with a 503
 * (OAuth `temporarily_unavailable`) instead of hanging or answering 500.
 */
export class StoreUnavailableError extends errors.OIDCProviderError {
  override readonly error_description = 'a store the provider needs is unavailable; try again shortly';

  constructor(cause: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    // oidc-provider turns unexposed (5xx) errors into server_error; this one is a standard OAuth
    // error (RFC 6749 §4.1.2.1) that the client should see as it is.
    this.expose = true;
  }
}

/**
 * Postgres SQLSTATEs that mean the server went away or cannot take the work now, not that the query
 * was wrong: class 08 (connection exception), class 53 (insufficient resources: too many connections,
 * out of memory), 57P01-57P03 (shut down, crashed, starting up) and 57014 (cancelled by a timeout).
 */
const UNAVAILABLE_SQLSTATES = /^(08...|53...|57P0[1-3]|57014)$/;

/** Errors of the network stack and of the drivers when the server is not there. */
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ECONNABORTED']);

/** What pg and ioredis say when their connection is gone or a command timed out; they set no code. */
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/, // pg: the server closed the connection, or connectionTimeoutMillis
  /^timeout exceeded when trying to connect$/, // pg-pool: no connection within connectionTimeoutMillis
  /^Client has encountered a connection error and is not queryable$/,
  /^Query read timeout$/, // pg: query_timeout
  /^Connection is closed\.$/, // ioredis
  /^Command timed out$/, // ioredis: commandTimeout
  /^Stream isn't writeable and enableOfflineQueue options is false$/, // ioredis while reconnecting
  /^Reached the max retries per request limit/, // ioredis: MaxRetriesPerRequestError
];

/** Whether `error` (or its cause) says a store is unreachable or overloaded, rather than a bug or bad input. */
export function isStoreUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 5; current = current.cause, depth += 1) {
    if (current instanceof StoreUnavailableError) return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && (UNAVAILABLE_SQLSTATES.test(code) || UNAVAILABLE_ERRNOS.has(code))) return true;
    if (UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(current.message))) return true;
    if (current instanceof AggregateError && current.errors.some((inner) => isStoreUnavailable(inner))) return true;
  }
  return false;
}

/** Runs a store operation; a store that cannot answer becomes StoreUnavailableError, anything else is thrown as it is. */
export async function unlessUnavailable<T>(operation: Promise<T>): Promise<T> {
  try {
    return await operation;
  } catch (error) {
    if (!(error instanceof StoreUnavailableError) && isStoreUnavailable(error)) throw new StoreUnavailableError(error);
    throw error;
  }
}
