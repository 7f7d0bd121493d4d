import type { Middleware } from 'koa';
import proxyaddr from 'proxy-addr';
import type { ClientIp } from './client-ip.ts';
import { remembered } from '../remembered.ts';

/**
 * With `proxy` on, Koa (ours and the provider's) takes ctx.ip, ctx.protocol (so ctx.secure and the
 * cookies' Secure flag) and ctx.host from X-Forwarded-For/-Proto/-Host. This runs first and makes
 * those headers say only what a TRUST_PROXY peer said:
 * - from any other peer they are removed, so the connection's own address and scheme count;
 * - from a trusted peer, X-Forwarded-For becomes the address proxy-addr resolves through the trusted
 *   hops (Koa would take the left-most entry, which the client writes), and a list in X-Forwarded-Proto
 *   or -Host is cut to its last entry, the one the immediate proxy added.
 */
export function believeForwardedHeaders(trustProxy: string[], clientIp: ClientIp): Middleware {
  const compiled = proxyaddr.compile(trustProxy);
  // A few peers (the balancers) send nearly every request: their answer is kept, not parsed again.
  const trust = remembered((peer) => compiled(peer, 0));
  return async (ctx, next) => {
    const { headers } = ctx.req;
    const peer = ctx.req.socket.remoteAddress;
    if (peer !== undefined && trust(peer)) {
      if (headers['x-forwarded-for'] !== undefined) headers['x-forwarded-for'] = clientIp(ctx.req);
      for (const name of ['x-forwarded-proto', 'x-forwarded-host'] as const) {
        const value = headers[name];
        if (value !== undefined) headers[name] = [value].flat().join(',').split(',').at(-1)?.trim() ?? '';
      }
    } else {
      delete headers['x-forwarded-for'];
      delete headers['x-forwarded-proto'];
      delete headers['x-forwarded-host'];
    }
    return next();
  };
}
