import type { IncomingMessage } from 'node:http';
import proxyaddr from 'proxy-addr';

export type ClientIp = (req: IncomingMessage) => string;

/**
 * The address a request came from. `X-Forwarded-For` is followed only through the configured
 * proxies (TRUST_PROXY), so a client cannot choose the address its rate limits are counted under.
 */
export function clientIpResolver(trustProxy: string[]): ClientIp {
  const trust = proxyaddr.compile(trustProxy);
  return (req) => {
    try {
      return proxyaddr(req, trust);
    } catch {
      return req.socket.remoteAddress ?? 'unknown';
    }
  };
}
