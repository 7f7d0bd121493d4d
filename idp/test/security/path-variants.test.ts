import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressedBrowser, hiddenField } from '../../../test/support/browser.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { WRONG_CODE } from '../../src/interactions/device-codes.ts';
import { escapeHtml } from '../../src/pages/html.ts';
import { LIMITS } from '../../src/security/limits.ts';

/**
 * oidc-provider's router ignores the case of a path and one trailing slash: `/TOKEN` is its token
 * endpoint. Our controls in front of it (failure limits, the per-client budget, the registered-method
 * check, the audit, the device page's CSRF check and wrong-code limit) decide by that same route.
 */
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

/** Each client-authenticating endpoint under another spelling, with the canonical path it resolves to. */
const VARIANTS = [
  { path: '/TOKEN', endpoint: '/token', params: { grant_type: 'client_credentials' } },
  { path: '/token/', endpoint: '/token', params: { grant_type: 'client_credentials' } },
  { path: '/Token/Introspection', endpoint: '/token/introspection', params: { token: 'not-a-token' } },
  { path: '/TOKEN/REVOCATION', endpoint: '/token/revocation', params: { token: 'not-a-token' } },
  { path: '/REQUEST', endpoint: '/request', params: { response_type: 'code', redirect_uri: 'http://127.0.0.1/callback', scope: 'openid' } },
  { path: '/Device/Auth/', endpoint: '/device/auth', params: { scope: 'openid' } },
] as const;

interface Client {
  client_id: string;
  client_secret: string;
}

describe('path variants of the provider endpoints (postgres+redis)', () => {
  let idp: TestServer;
  let addresses = 0;
  const nextIp = () => `198.51.100.${(addresses += 1)}`;

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis', { TRUST_PROXY: 'loopback' });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  const confidentialClient = (clientId: string) =>
    idp.registerClient({
      client_id: clientId,
      grant_types: ['client_credentials', 'authorization_code', DEVICE_GRANT],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
    }) as Promise<Client & Record<string, unknown>>;

  async function post(path: string, client: Client, ip: string, params: Record<string, string>, how: { secret?: string; method?: 'basic' | 'post' } = {}) {
    const secret = how.secret ?? client.client_secret;
    const body = new URLSearchParams(params);
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-for': ip };
    if (how.method === 'post') {
      body.set('client_id', client.client_id);
      body.set('client_secret', secret);
    } else {
      headers['authorization'] = `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
    }
    const response = await fetch(`${idp.issuer}${path}`, { method: 'POST', headers, body });
    const text = await response.text();
    return { status: response.status, body: text.startsWith('{') ? (JSON.parse(text) as Record<string, unknown>) : text };
  }

  /** The endpoint each audit row of this type for this client names, oldest first. */
  async function auditedEndpoints(clientId: string, type: string): Promise<unknown[]> {
    const rows = await idp.server.database.db
      .selectFrom('audit_events')
      .select(['details'])
      .where('client_id', '=', clientId)
      .where('event_type', '=', type)
      .orderBy('id')
      .execute();
    return rows.map((row) => row.details['endpoint']);
  }

  it('while /token is blocked for a client, every spelling of every client endpoint is refused with 429 and audited', async () => {
    const client = await confidentialClient('variants-blocked');
    const ip = nextIp();
    for (let i = 1; i <= 5; i += 1) {
      expect((await post('/token', client, ip, { grant_type: 'client_credentials' }, { secret: 'wrong secret' })).status, `failure ${i}`).toBe(401);
    }
    expect((await post('/token', client, ip, { grant_type: 'client_credentials' })).status).toBe(429);

    for (const variant of VARIANTS) {
      const response = await post(variant.path, client, ip, variant.params);
      expect(response.status, variant.path).toBe(429);
      expect(response.body, variant.path).toMatchObject({ error: 'temporarily_unavailable' });
    }
    // The first refusal was the plain /token; each variant is recorded under the endpoint it reached.
    expect(await auditedEndpoints('variants-blocked', 'client_auth.rate_limited')).toEqual(['/token', ...VARIANTS.map((variant) => variant.endpoint)]);
  });

  it('a failed client authentication on a variant is counted and audited like one on the endpoint itself', async () => {
    const client = await confidentialClient('variants-counted');
    const ip = nextIp();
    for (const variant of VARIANTS.slice(0, 5)) {
      expect((await post(variant.path, client, ip, variant.params, { secret: 'wrong secret' })).status, variant.path).toBe(401);
    }
    expect((await post('/token', client, ip, { grant_type: 'client_credentials' })).status).toBe(429);
    expect(await auditedEndpoints('variants-counted', 'client_auth.failure')).toEqual(VARIANTS.slice(0, 5).map((variant) => variant.endpoint));
  });

  it('holds a client to its registered method on every spelling', async () => {
    const client = await confidentialClient('variants-method');
    for (const variant of VARIANTS) {
      const response = await post(variant.path, client, nextIp(), variant.params, { method: 'post' });
      expect(response.status, variant.path).toBe(401);
      expect(response.body, variant.path).toMatchObject({ error: 'invalid_client', error_description: expect.stringContaining('client_secret_basic') });
    }
  });
});

describe('path variants of the device page (embedded)', () => {
  let idp: TestServer;
  let config: oidc.Configuration;
  let addresses = 0;
  const nextBrowser = () => new AddressedBrowser(`203.0.113.${(addresses += 1)}`);

  beforeAll(async () => {
    idp = await startTestServer('embedded', { TRUST_PROXY: 'loopback' });
    await idp.registerClient({
      client_id: 'worker',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', DEVICE_GRANT],
    });
    config = await oidc.discovery(new URL(idp.issuer), 'worker', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });
  afterAll(async () => {
    await idp?.stop();
  });

  async function codePage(browser: AddressedBrowser, path: string) {
    const page = await browser.follow(`${idp.issuer}${path}`);
    expect(page.status, path).toBe(200);
    return { xsrf: hiddenField(page.body, 'xsrf'), csrf: hiddenField(page.body, '_csrf'), body: page.body };
  }

  it('checks our CSRF token on /Device/ and /DEVICE, before the provider sees the code', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const browser = nextBrowser();
    const { xsrf, csrf } = await codePage(browser, '/Device/');
    for (const path of ['/Device/', '/DEVICE']) {
      const forged = await browser.request(`${idp.issuer}${path}`, { form: { xsrf, _csrf: `${csrf.slice(0, -2)}xx`, user_code: device.user_code } });
      expect(forged.status, path).toBe(403);
      expect(forged.body, path).not.toContain('Sign in to');
    }
  });

  it('counts wrong codes on /DEVICE/ against the per-IP limit', async () => {
    const browser = nextBrowser();
    const { xsrf, csrf } = await codePage(browser, '/DEVICE/');
    for (let attempt = 0; attempt < LIMITS['device-code-ip'].points; attempt += 1) {
      const wrong = await browser.request(`${idp.issuer}${attempt % 2 ? '/DEVICE/' : '/Device'}`, { form: { xsrf, _csrf: csrf, user_code: 'BBBB-BBBB' } });
      expect(wrong.status).toBe(400);
      expect(wrong.body).toContain(escapeHtml(WRONG_CODE));
    }
    const limited = await browser.request(`${idp.issuer}/DEVICE/`, { form: { xsrf, _csrf: csrf, user_code: 'BBBB-BBBB' } });
    expect(limited.status).toBe(429);
  });

  it('publishes /JWKS and /jwks/ with the same Cache-Control as /jwks', async () => {
    const expected = (await fetch(`${idp.issuer}/jwks`)).headers.get('cache-control');
    expect(expected).toMatch(/^public, max-age=\d+$/);
    for (const path of ['/JWKS', '/jwks/']) expect((await fetch(`${idp.issuer}${path}`)).headers.get('cache-control'), path).toBe(expected);
  });

  it('puts the code of a verification link with another spelling in the form without submitting it', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const page = await codePage(nextBrowser(), `/DEVICE/?user_code=${encodeURIComponent(device.user_code)}`);
    expect(page.body).toContain(`value="${device.user_code}"`);
    expect(page.body).not.toContain('Sign in to');
  });
});
