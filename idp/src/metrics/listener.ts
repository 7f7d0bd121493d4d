import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../logger.ts';
import { StartupError } from '../store.ts';

/** What one scrape answers. */
export interface Scrape {
  contentType: string;
  body: string;
}

export interface MetricsListener {
  /** http://host:port/metrics */
  url: string;
  port: number;
  close(): Promise<void>;
}

/**
 * The metrics listener: `GET /metrics` on METRICS_HOST:METRICS_PORT and nothing else (404), never
 * on the public port. A scrape that fails answers 503 and is logged; it never takes a stack trace out.
 */
export async function listenForScrapes(address: { host: string; port: number }, scrape: () => Promise<Scrape>, log: Logger): Promise<MetricsListener> {
  const server: Server = createServer({ keepAliveTimeout: 5_000, requestTimeout: 30_000 }, (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('Not found: metrics are at GET /metrics\n');
      return;
    }
    scrape().then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'content-type': contentType, 'cache-control': 'no-store' }).end(req.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        log.warn({ err: error }, 'metrics scrape failed');
        res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' }).end('Metrics are unavailable right now.\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      // Named like a public port that cannot be listened on: a start-up problem the operator fixes.
      reject(new StartupError(`cannot listen for metrics on ${address.host}:${address.port} (METRICS_HOST, METRICS_PORT): ${error.code ?? error.message}`));
    });
    server.listen({ port: address.port, host: address.host }, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = address.host.includes(':') ? `[${address.host}]` : address.host;
  return {
    url: `http://${host}:${port}/metrics`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
