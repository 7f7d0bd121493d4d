import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/**
 * CORS is answered, on preflight and actual requests, only for origins of registered redirect URIs,
 * and only on the provider's JSON endpoints: discovery, JWKS, token, userinfo, revocation. The client
 * endpoints further require the origin to be one of the authenticating client's own. Never on the
 * authorization endpoint, the interaction pages or /account.
 */

const APP = 'https://app.example';
/** Registered too, but by another client. */
const OTHER = 'https://other.example';
const EVIL = 'https://evil.example';
/** What a sandboxed frame or a file: page sends; also the "origin" of a custom-scheme redirect URI. */
const NULL_ORIGIN = 'null';

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

/** The response's Access-Control-* headers, by lower-case name. */
function corsHeaders(headers: Headers): Record<string, string> {
  return Object.fromEntries([...headers].filter(([name]) => name.startsWith('access-control-')));
}

/** No CORS for this origin: nothing at all, or for a registered origin of another client the provider's per-client check removed Allow-Origin. */
function expectRefused(headers: Headers, origin: string): void {
  if (origin === OTHER) expect(corsHeaders(headers), origin).not.toHaveProperty('access-control-allow-origin');
  else expect(corsHeaders(headers), origin).toEqual({});
}

async function preflight(url: string, origin: string, method: string, requestHeaders?: string) {
  const response = await fetch(url, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, ...(requestHeaders ? { 'access-control-request-headers': requestHeaders } : {}) },
  });
  await response.arrayBuffer();
  return response;
}

async function actual(url: string, origin: string, init: { form?: Record<string, string>; headers?: Record<string, string> } = {}) {
  const response = await fetch(url, {
    method: init.form ? 'POST' : 'GET',
    redirect: 'manual',
    headers: { origin, ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}), ...init.headers },
    ...(init.form ? { body: new URLSearchParams(init.form) } : {}),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text };
}

describe('CORS per endpoint (embedded)', () => {
  let idp: TestServer;
  let spa: RelyingParty;
  let accessToken: string;

  beforeAll(async () => {
    idp = await startTestServer('embedded');
    await idp.createUser(alice);
    // A browser app: public client, PKCE, its redirect URI on https://app.example.
    const client = await idp.registerClient({
      client_id: 'spa',
      redirect_uris: [`${APP}/callback`],
      token_endpoint_auth_method: 'none',
      first_party: true,
    });
    await idp.registerClient({ client_id: 'other', redirect_uris: [`${OTHER}/callback`] });
    // A desktop app with a custom-scheme redirect URI, whose URL origin is "null".
    await idp.registerClient({
      client_id: 'desktop',
      application_type: 'native',
      redirect_uris: ['com.jobswipe.desktop:/callback'],
      token_endpoint_auth_method: 'none',
    });
    spa = await relyingParty(idp.issuer, client);
    const request = await authorizationRequest(spa, 'openid email');
    const callback = await signIn(new Browser(), idp.issuer, request, spa.redirectUri, alice);
    accessToken = (await exchangeCode(spa, request, callback.location ?? '')).access_token;
  });
  afterAll(async () => {
    await idp?.stop();
  });

  describe.each([
    ['discovery', '/.well-known/openid-configuration'],
    ['JWKS', '/jwks'],
  ])('%s (public documents, GET)', (_name, path) => {
    it('answers a registered redirect URI origin, preflight and actual', async () => {
      const pre = await preflight(`${idp.issuer}${path}`, APP, 'GET');
      expect(pre.status).toBe(204);
      expect(corsHeaders(pre.headers)).toMatchObject({ 'access-control-allow-origin': APP, 'access-control-allow-methods': 'GET' });
      const response = await actual(`${idp.issuer}${path}`, APP);
      expect(response.status).toBe(200);
      expect(corsHeaders(response.headers)).toEqual({ 'access-control-allow-origin': APP });
      expect(response.headers.get('vary')).toMatch(/origin/i);
    });

    it('sends no CORS headers to any other origin, nor to "null" (the document itself is still served)', async () => {
      for (const origin of [EVIL, NULL_ORIGIN]) {
        const pre = await preflight(`${idp.issuer}${path}`, origin, 'GET');
        expect(corsHeaders(pre.headers), origin).toEqual({});
        const response = await actual(`${idp.issuer}${path}`, origin);
        expect(response.status, origin).toBe(200);
        expectRefused(response.headers, origin);
      }
      // Without an Origin (not a cross-origin browser request): no wildcard either.
      expect(corsHeaders((await fetch(`${idp.issuer}${path}`)).headers)).toEqual({});
    });
  });

  it('token: the client\'s own origin gets CORS (even on an error it must read); other origins get none and are refused', async () => {
    const url = `${idp.issuer}/token`;
    const pre = await preflight(url, APP, 'POST', 'content-type');
    expect(pre.status).toBe(204);
    expect(corsHeaders(pre.headers)).toMatchObject({ 'access-control-allow-origin': APP, 'access-control-allow-methods': 'POST' });

    const form = { grant_type: 'refresh_token', refresh_token: 'not-a-refresh-token', client_id: 'spa' };
    const fromApp = await actual(url, APP, { form });
    expect(fromApp.status).toBe(400);
    expect(JSON.parse(fromApp.body)).toMatchObject({ error: 'invalid_grant' });
    expect(corsHeaders(fromApp.headers)).toMatchObject({ 'access-control-allow-origin': APP });

    for (const origin of [EVIL, NULL_ORIGIN, OTHER]) {
      const pre = await preflight(url, origin, 'POST', 'content-type');
      // OTHER is some client's origin, so its preflight passes; the actual request names the client.
      if (origin !== OTHER) expect(corsHeaders(pre.headers), origin).toEqual({});
      const response = await actual(url, origin, { form });
      expectRefused(response.headers, origin);
      expect(response.status, origin).toBe(400);
      expect(JSON.parse(response.body), origin).toMatchObject({ error: 'invalid_request', error_description: expect.stringContaining('not allowed for client') });
    }
    // "null" is not the origin of the desktop client's custom-scheme redirect URI.
    const desktop = await actual(url, NULL_ORIGIN, { form: { ...form, client_id: 'desktop' } });
    expect(corsHeaders(desktop.headers)).toEqual({});
    expect(JSON.parse(desktop.body)).toMatchObject({ error: 'invalid_request' });
  });

  it('userinfo: the token\'s client origin gets CORS, with Authorization allowed; other origins get none', async () => {
    const url = `${idp.issuer}/me`;
    const pre = await preflight(url, APP, 'GET', 'authorization');
    expect(pre.status).toBe(204);
    expect(corsHeaders(pre.headers)).toMatchObject({ 'access-control-allow-origin': APP, 'access-control-allow-headers': 'authorization' });
    const authorization = { authorization: `Bearer ${accessToken}` };
    const fromApp = await actual(url, APP, { headers: authorization });
    expect(fromApp.status).toBe(200);
    expect(JSON.parse(fromApp.body)).toMatchObject({ email: alice.email });
    expect(corsHeaders(fromApp.headers)).toMatchObject({ 'access-control-allow-origin': APP });

    for (const origin of [EVIL, NULL_ORIGIN, OTHER]) {
      if (origin !== OTHER) expect(corsHeaders((await preflight(url, origin, 'GET', 'authorization')).headers), origin).toEqual({});
      const response = await actual(url, origin, { headers: authorization });
      expectRefused(response.headers, origin);
      expect(response.body, origin).not.toContain(alice.email);
    }
  });

  it('revocation: the client\'s own origin gets CORS; other origins get none and are refused', async () => {
    const url = `${idp.issuer}/token/revocation`;
    const pre = await preflight(url, APP, 'POST', 'content-type');
    expect(corsHeaders(pre.headers)).toMatchObject({ 'access-control-allow-origin': APP, 'access-control-allow-methods': 'POST' });
    const form = { token: 'not-a-token', client_id: 'spa' };
    const fromApp = await actual(url, APP, { form });
    expect(fromApp.status).toBe(200);
    expect(corsHeaders(fromApp.headers)).toMatchObject({ 'access-control-allow-origin': APP });
    for (const origin of [EVIL, NULL_ORIGIN, OTHER]) {
      if (origin !== OTHER) expect(corsHeaders((await preflight(url, origin, 'POST', 'content-type')).headers), origin).toEqual({});
      const response = await actual(url, origin, { form });
      expectRefused(response.headers, origin);
      expect(response.status, origin).toBe(400);
    }
  });

  it('never answers CORS on the authorization endpoint, the interaction pages or /account, even for a registered origin', async () => {
    const request = await authorizationRequest(spa, 'openid');
    const authorize = await actual(request.url, APP);
    expect(authorize.status).toBe(303);
    expect(corsHeaders(authorize.headers)).toEqual({});
    const interaction = authorize.headers.get('location') ?? '';
    expect(interaction).toMatch(/\/interaction\//);
    const pages = [request.url, new URL(interaction, idp.issuer).toString(), `${idp.issuer}/account`, `${idp.issuer}/account/sessions`];
    for (const url of pages) {
      for (const method of ['GET', 'POST']) {
        expect(corsHeaders((await preflight(url, APP, method, 'content-type')).headers), `${method} preflight ${url}`).toEqual({});
      }
      expect(corsHeaders((await actual(url, APP)).headers), url).toEqual({});
    }
    const post = await actual(new URL(`${interaction}/login`, idp.issuer).toString(), APP, { form: { email: alice.email, password: alice.password } });
    expect(corsHeaders(post.headers)).toEqual({});
  });
});
