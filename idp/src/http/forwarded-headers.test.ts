import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { describe, expect, it } from 'vitest';
import { clientIpResolver } from './client-ip.ts';
import { believeForwardedHeaders } from './forwarded-headers.ts';

/** What Koa (with `proxy` on, as app.ts sets it) tells the code behind the middleware. */
async function seenBehind(trustProxy: string[], headers: Record<string, string>) {
  const app = new Koa();
  app.proxy = true;
  app.use(believeForwardedHeaders(trustProxy, clientIpResolver(trustProxy)));
  app.use((ctx) => {
    ctx.body = { ip: ctx.ip, protocol: ctx.protocol, secure: ctx.secure, host: ctx.host };
  });
  const server = createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const response = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, { headers });
    return (await response.json()) as { ip: string; protocol: string; secure: boolean; host: string };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const FORWARDED = { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'id.jobswipe.test' };

describe('believeForwardedHeaders', () => {
  it('believes X-Forwarded-For/-Proto/-Host when the immediate peer is a trusted proxy', async () => {
    expect(await seenBehind(['loopback'], FORWARDED)).toEqual({ ip: '203.0.113.7', protocol: 'https', secure: true, host: 'id.jobswipe.test' });
  });

  it('ignores them from a peer that is not a trusted proxy, or when no proxy is trusted', async () => {
    for (const trustProxy of [['192.0.2.1'], []]) {
      const seen = await seenBehind(trustProxy, FORWARDED);
      expect(seen).toEqual({ ip: '127.0.0.1', protocol: 'http', secure: false, host: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    }
  });

  it('takes the client address through the trusted hops only, not the left-most entry the client wrote', async () => {
    const seen = await seenBehind(['loopback'], {
      'x-forwarded-for': '198.51.100.66, 203.0.113.7',
      'x-forwarded-proto': 'http, https',
      'x-forwarded-host': 'evil.example, id.jobswipe.test',
    });
    expect(seen).toEqual({ ip: '203.0.113.7', protocol: 'https', secure: true, host: 'id.jobswipe.test' });
  });
});
