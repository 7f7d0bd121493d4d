import { randomBytes } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateSigningKey } from '@jobswipe/keystore';
import Provider, { type Adapter } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { providerConfiguration } from '../provider/configuration.ts';
import type { UserQueries } from '../users/queries.ts';
import { resolveGuardedRoute } from './route-resolution.ts';

/**
 * Our resolution must agree with the route oidc-provider's own router takes, for every spelling an
 * attacker might try: it is what our limits and checks in front of the provider decide by.
 */
const GUARDED = new Set(['token', 'introspection', 'revocation', 'pushed_authorization_request', 'device_authorization', 'code_verification', 'jwks']);
const CANONICAL = ['/token', '/token/introspection', '/token/revocation', '/request', '/device/auth', '/device', '/jwks', '/me', '/device/abc'];

function spellings(path: string): string[] {
  const mixed = [...path].map((char, i) => (i % 2 ? char.toUpperCase() : char)).join('');
  return [
    path,
    path.toUpperCase(),
    mixed,
    `${path}/`,
    `${path.toUpperCase()}/`,
    `${path}//`,
    `/${path}`,
    `${path}.`,
    path.replace(/[a-z]$/, (last) => `%${last.charCodeAt(0).toString(16)}`),
    // Latin-1 letters whose upper case is not ASCII; the wire carries them as single bytes.
    path.replace(/s/, 'ß').replace(/i/, 'ÿ'),
  ];
}

describe('provider route resolution', () => {
  let provider: Provider;
  let server: Server;
  const seen = new Map<string, string | null>();

  beforeAll(async () => {
    const { privateJwk } = await generateSigningKey();
    // The routing under test needs no storage; the provider's own in-memory adapter keeps it self-contained.
    const { default: MemoryAdapter } = (await import('oidc-provider/lib/adapters/memory_adapter.js' as string)) as { default: new (name: string) => Adapter };
    const configuration = providerConfiguration({
      issuer: 'http://localhost',
      jwks: { keys: [privateJwk] },
      cookieKeys: [randomBytes(32).toString('base64url')],
      adapter: MemoryAdapter,
      scopes: ['openid'],
      users: {} as UserQueries,
      api: { resource: 'http://localhost/api', scopes: [] },
    });
    provider = new Provider('http://localhost', configuration);
    provider.use(async (ctx, next) => {
      await next();
      seen.set(`${ctx.method} ${ctx.path}`, (ctx as { oidc?: { route?: string } }).oidc?.route ?? null);
    });
    server = createServer(provider.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve));
  });

  async function routeTaken(method: string, path: string): Promise<string | null> {
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      const sent = request({ host: '127.0.0.1', port, method, path, headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (response) => {
        response.resume();
        response.on('end', resolve);
      });
      sent.on('error', reject);
      sent.end(method === 'POST' ? 'a=b' : undefined);
    });
    return seen.get(`${method} ${path}`) ?? null;
  }

  it('resolves every spelling to the route the provider takes, or to none when the provider takes no guarded route', async () => {
    const disagreements: string[] = [];
    let guardedHits = 0;
    for (const canonical of CANONICAL) {
      for (const path of spellings(canonical)) {
        for (const method of ['GET', 'HEAD', 'POST', 'OPTIONS']) {
          const taken = await routeTaken(method, path);
          const expected = taken !== null && GUARDED.has(taken) ? taken : null;
          const ours = resolveGuardedRoute(provider, method, path)?.name ?? null;
          if (ours !== expected) disagreements.push(`${method} ${path}: provider ${taken}, ours ${ours}`);
          if (ours !== null) guardedHits += 1;
        }
      }
    }
    expect(disagreements).toEqual([]);
    // Not vacuous: variants did reach guarded routes.
    expect(guardedHits).toBeGreaterThan(30);
  });

  it('names the canonical path of the route, whatever the spelling', () => {
    expect(resolveGuardedRoute(provider, 'POST', '/Token/Introspection/')).toEqual({ name: 'introspection', path: '/token/introspection' });
    expect(resolveGuardedRoute(provider, 'POST', '/Device/Auth/')).toEqual({ name: 'device_authorization', path: '/device/auth' });
    expect(resolveGuardedRoute(provider, 'GET', '/DEVICE/')).toEqual({ name: 'code_verification', path: '/device' });
    expect(resolveGuardedRoute(provider, 'GET', '/token')).toBeNull();
  });
});
