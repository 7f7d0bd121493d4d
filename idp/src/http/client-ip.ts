import type { IncomingMessage } from 'node:http';
import ipaddr from 'ipaddr.js';
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

/**
 * The network every per-IP limit counts an address under: an IPv4 address as it is (IPv4-mapped
 * IPv6 too), an IPv6 address by its /64, since one subscriber is handed a whole /64 to pick from.
 */
export function limitedNetwork(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const address = ipaddr.process(ip);
  if (address.kind() === 'ipv4') return address.toString();
  const prefix = (address as ipaddr.IPv6).parts.slice(0, 4);
  return `${new ipaddr.IPv6([...prefix, 0, 0, 0, 0]).toString()}/64`;
}

/** Where a request came from, as every audit row records it. */
export function requestOrigin(ctx: { req: IncomingMessage; get(field: string): string }, clientIp: ClientIp) {
  return { ip: clientIp(ctx.req), userAgent: ctx.get('user-agent') };
}
