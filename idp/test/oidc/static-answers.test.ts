import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/** Discovery and the JWKS are answered from what the serving provider instance answered first. */
describe('static answers', () => {
  let idp: TestServer;
  let reached: string[];

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis');
    reached = [];
    // Innermost: sees only the requests that the provider itself handles.
    idp.server.provider.use(async (ctx, next) => {
      reached.push(ctx.path);
      await next();
    });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  const get = async (path: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${idp.issuer}${path}`, { headers });
    return { status: response.status, type: response.headers.get('content-type'), cache: response.headers.get('cache-control'), vary: response.headers.get('vary'), body: await response.text() };
  };

  it.each(['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/jwks'])('%s: the provider builds it once; later answers are the same bytes and headers', async (path) => {
    reached.length = 0;
    const first = await get(path);
    const later = await Promise.all([get(path), get(path), get(path)]);
    expect(first.status).toBe(200);
    for (const answer of later) expect(answer).toEqual(first);
    expect(reached.filter((seen) => seen === path).length).toBeLessThanOrEqual(1);
    if (path === '/jwks') expect(first.cache).toMatch(/^public, max-age=\d+$/);
    expect(JSON.parse(first.body)).toBeTypeOf('object');
  });

  it.each(['/.well-known/openid-configuration', '/jwks'])('%s: a kept answer carries the request id and the fixed protections of a JSON answer', async (path) => {
    await get(path);
    reached.length = 0;
    const response = await fetch(`${idp.issuer}${path}`, { headers: { 'x-request-id': 'static-answer-check' } });
    await response.text();
    expect(reached).toEqual([]);
    expect(response.headers.get('x-request-id')).toBe('static-answer-check');
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    expect(response.headers.get('referrer-policy')).toBe('no-referrer');
    expect(response.headers.get('x-frame-options')).toBe('DENY');
    expect(response.headers.get('vary')).toBe('Origin');
    const random = await fetch(`${idp.issuer}${path}`);
    await random.text();
    expect(random.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a request with an Origin still goes to the provider (CORS is answered per origin)', async () => {
    await get('/jwks');
    reached.length = 0;
    await get('/jwks', { origin: 'https://elsewhere.example' });
    expect(reached).toEqual(['/jwks']);
  });
});
