import { request as httpRequest } from 'node:http';
import type { Config } from '@jobswipe/config';
import { request as httpsRequest } from 'node:https';
import { checkLiteralHost, guardedLookup, RefusedDestination, type DestinationPolicy } from './destination.ts';
import type { LogoutSubject, LogoutTokenSigner } from './logout-tokens.ts';

/** One logout token to send: who ends, and where the client listens. */
export interface LogoutNotice extends LogoutSubject {
  uri: string;
}

export interface DeliveryOptions {
  policy: DestinationPolicy;
  /** Bound on one attempt: connecting, sending and reading the answer. */
  timeoutMs: number;
  /** Further attempts after a failure that may be temporary. */
  retries: number;
  /** Delay before the first retry; each later one doubles it. */
  backoffMs: number;
}

/** The delivery settings from configuration (BACKCHANNEL_LOGOUT_*); retries back off from 1 s. */
export function deliveryOptionsFrom(config: Config): DeliveryOptions {
  const { allowLoopback, allowPrivate, timeoutSeconds, retries } = config.backchannelLogout;
  return { policy: { allowLoopback, allowPrivate }, timeoutMs: timeoutSeconds * 1000, retries, backoffMs: 1000 };
}

export interface DeliveryResult {
  clientId: string;
  uri: string;
  delivered: boolean;
  attempts: number;
  /** The last HTTP status received, if any. */
  status?: number;
  /** Why the last attempt failed. */
  error?: string;
}

export interface DeliveryLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

class DeliveryFailure extends Error {
  readonly retryable: boolean;
  readonly status: number | undefined;

  constructor(message: string, retryable: boolean, status?: number) {
    super(message);
    this.retryable = retryable;
    this.status = status;
  }
}

function post(url: URL, body: string, options: DeliveryOptions, stopping: AbortSignal): Promise<number> {
  checkLiteralHost(url, options.policy);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send(
      url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'content-length': Buffer.byteLength(body),
          'user-agent': 'JobSwipe-Identity',
        },
        lookup: guardedLookup(options.policy),
        signal: AbortSignal.any([AbortSignal.timeout(options.timeoutMs), stopping]),
      },
      (response) => {
        // The answer's body means nothing to us; read it so the socket is released.
        response.resume();
        response.on('end', () => resolve(response.statusCode ?? 0));
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

function classify(error: unknown): DeliveryFailure {
  if (error instanceof DeliveryFailure) return error;
  if (error instanceof RefusedDestination) return new DeliveryFailure(error.message, false);
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof RefusedDestination) return new DeliveryFailure(cause.message, false);
  const name = (error as Error).name;
  if (name === 'AbortError' || name === 'TimeoutError') return new DeliveryFailure('timed out', true);
  return new DeliveryFailure((error as NodeJS.ErrnoException).code ?? (error as Error).message, true);
}

/** A bound that must not keep the process alive by itself. */
const unrefSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** A backoff wait: keeps the process alive (a CLI run must finish its retries) unless `signal` ends it. */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/**
 * Sends logout tokens to relying parties' back-channel logout URIs. `notify` never waits: the user's
 * logout page does not depend on a relying party answering. Each delivery is retried with backoff
 * when the failure may be temporary (network error, timeout, 5xx, 429), and signs a fresh token per
 * attempt so a late retry never carries an expired one.
 */
export function createLogoutNotifier(sign: LogoutTokenSigner, options: DeliveryOptions, log?: DeliveryLog, onDelivery?: (result: DeliveryResult) => void) {
  const inFlight = new Set<Promise<DeliveryResult>>();
  // Aborted when the process shuts down: no new attempt starts, requests under way are cut.
  const stopping = new AbortController();

  async function deliver(notice: LogoutNotice): Promise<DeliveryResult> {
    const result: DeliveryResult = { clientId: notice.clientId, uri: notice.uri, delivered: false, attempts: 0 };
    let url: URL;
    try {
      url = new URL(notice.uri);
    } catch {
      return { ...result, error: 'not a URL' };
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ...result, error: `${url.protocol} is not http or https` };
    for (let attempt = 0; attempt <= options.retries; attempt += 1) {
      if (attempt > 0) await wait(options.backoffMs * 2 ** (attempt - 1), stopping.signal);
      if (stopping.signal.aborted) {
        result.error = 'the provider shut down before it was delivered';
        break;
      }
      result.attempts = attempt + 1;
      try {
        let token: string;
        try {
          token = await sign(notice);
        } catch (error) {
          // Not the relying party's fault, and not one a retry would cure.
          throw new DeliveryFailure(`could not sign the logout token: ${(error as Error).message}`, false);
        }
        const status = await post(url, new URLSearchParams({ logout_token: token }).toString(), options, stopping.signal);
        result.status = status;
        if (status === 200 || status === 204) {
          result.delivered = true;
          delete result.error;
          break;
        }
        throw new DeliveryFailure(`answered ${status}`, status >= 500 || status === 429, status);
      } catch (error) {
        const failure = stopping.signal.aborted ? new DeliveryFailure('the provider shut down before it was delivered', false) : classify(error);
        result.error = failure.message;
        if (!failure.retryable) break;
      }
    }
    const fields = { event: 'backchannel_logout', clientId: notice.clientId, origin: url.origin, attempts: result.attempts, sid: Boolean(notice.sid) };
    if (result.delivered) log?.info(fields, 'logout token delivered');
    else log?.warn({ ...fields, error: result.error }, 'logout token not delivered');
    return result;
  }

  function track(notice: LogoutNotice): Promise<DeliveryResult> {
    const pending = onDelivery
      ? deliver(notice).then((result) => {
          onDelivery(result);
          return result;
        })
      : deliver(notice);
    inFlight.add(pending);
    void pending.finally(() => inFlight.delete(pending));
    return pending;
  }

  return {
    /** Starts deliveries and returns at once. */
    notify(notices: LogoutNotice[]): void {
      for (const notice of notices) void track(notice);
    },
    /** Delivers and waits for every result (for the CLI, which reports them). */
    deliver(notices: LogoutNotice[]): Promise<DeliveryResult[]> {
      return Promise.all(notices.map(track));
    },
    /**
     * At shutdown: waits for deliveries under way, at most `ms`, then stops the rest (no further
     * retries; they are logged as not delivered).
     */
    async drain(ms: number): Promise<void> {
      if (inFlight.size > 0) await Promise.race([Promise.allSettled([...inFlight]), unrefSleep(ms)]);
      stopping.abort();
      await Promise.allSettled([...inFlight]);
    },
    get pending(): number {
      return inFlight.size;
    },
  };
}

export type LogoutNotifier = ReturnType<typeof createLogoutNotifier>;
