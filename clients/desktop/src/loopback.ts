import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Why a loopback sign-in did not produce a callback URL. */
export class CallbackError extends Error {
  readonly code: 'ERR_CALLBACK_TIMEOUT' | 'ERR_CALLBACK_STATE' | 'ERR_CALLBACK_ABORTED';

  constructor(code: CallbackError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export interface LoopbackCallback {
  /** http://127.0.0.1:<port>/callback: the redirect_uri of this one sign-in (RFC 8252 §7.3). */
  redirectUri: string;
  /** The full callback URL once the browser has arrived with the expected state. */
  callback: Promise<URL>;
  close(): Promise<void>;
}

const CALLBACK_PATH = '/callback';

function page(title: string, message: string): string {
  // No script, no external resource: the CSP below allows nothing but this inline style.
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;margin:3rem auto;max-width:30rem;color:#111827}h1{font-size:1.3rem}</style>
</head><body><h1>${title}</h1><p>${message}</p></body></html>`;
}

function answer(response: ServerResponse, status: number, title: string, message: string): void {
  response.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'none'",
    'referrer-policy': 'no-referrer',
    // The browser must not come back on this connection: the listener is finished with it.
    connection: 'close',
  });
  response.end(page(title, message));
}

/**
 * A listener on 127.0.0.1, on a port the system picks, for exactly one authorization response.
 * The first request to /callback settles it: with the expected state it resolves and the browser
 * is told to return to JobSwipe; with another state (or none) it fails. Either way the listener
 * stops at once, so a second callback finds nothing listening. Other paths get a 404 and do not count.
 */
export async function listenForCallback(options: { expectedState: string; timeoutMs: number; signal?: AbortSignal }): Promise<LoopbackCallback> {
  let settle!: { resolve: (url: URL) => void; reject: (error: Error) => void };
  const callback = new Promise<URL>((resolve, reject) => {
    settle = { resolve, reject };
  });
  callback.catch(() => {}); // a caller that gave up is not an unhandled rejection
  let done = false;

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', `http://127.0.0.1:${port}`);
    if (request.method !== 'GET' || url.pathname !== CALLBACK_PATH) {
      answer(response, 404, 'Not found', 'There is nothing here.');
      return;
    }
    if (done) {
      answer(response, 409, 'Already signed in', 'This sign-in has already been completed. Return to JobSwipe.');
      return;
    }
    done = true;
    void stop();
    if (url.searchParams.get('state') !== options.expectedState) {
      answer(response, 400, 'Sign-in failed', 'This sign-in response does not belong to the sign-in JobSwipe started, so it was ignored. Return to JobSwipe and try again.');
      settle.reject(new CallbackError('ERR_CALLBACK_STATE', 'the sign-in response did not match the sign-in that was started (state mismatch); try again'));
      return;
    }
    const failed = url.searchParams.get('error');
    answer(
      response,
      200,
      failed ? 'Sign-in did not complete' : 'You are signed in',
      failed ? 'Return to JobSwipe to see what happened.' : 'You can return to JobSwipe and close this window.',
    );
    settle.resolve(url);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  const timer = setTimeout(() => {
    if (done) return;
    done = true;
    settle.reject(new CallbackError('ERR_CALLBACK_TIMEOUT', `the sign-in was not completed in the browser within ${Math.round(options.timeoutMs / 1000)} seconds`));
    void stop();
  }, options.timeoutMs);
  timer.unref();

  const onAbort = () => {
    if (done) return;
    done = true;
    settle.reject(new CallbackError('ERR_CALLBACK_ABORTED', 'the sign-in was cancelled'));
    void stop();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let stopped: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopped ??= new Promise<void>((resolve) => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    return stopped;
  }

  return {
    redirectUri: `http://127.0.0.1:${port}${CALLBACK_PATH}`,
    callback,
    async close() {
      onAbort();
      await stop();
    },
  };
}
