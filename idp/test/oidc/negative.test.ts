import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { SERVER_SETUPS, startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'https://rp.example/callback';

describe.each(SERVER_SETUPS)('bad requests get standard errors, never a 5xx (%s)', (kind) => {
  let idp: TestServer;
  let secret: string;

  beforeAll(async () => {
    idp = await startTestServer(kind);
    const client = await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK] });
    secret = String(client['client_secret']);
  });
  afterAll(async () => {
    await idp?.stop();
  });

  const authorize = (params: Record<string, string>) =>
    new Browser().request(`${idp.issuer}/auth?${new URLSearchParams({
      response_type: 'code',
      scope: 'openid',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
      code_challenge_method: 'S256',
      state: 'state-1',
      ...params,
    })}`);

  it('shows an error page, and never redirects, for an unknown client or an unregistered redirect URI', async () => {
    for (const params of [
      { client_id: 'nobody', redirect_uri: CALLBACK },
      { client_id: 'rp', redirect_uri: 'https://attacker.example/callback' },
      { client_id: 'rp', redirect_uri: `${CALLBACK}/extra` },
      { client_id: 'rp', redirect_uri: 'https://rp.example:8443/callback' },
    ]) {
      const response = await authorize(params);
      expect(response.status).toBe(400);
      expect(response.location).toBeUndefined();
      expect(response.headers.get('content-type')).toMatch(/text\/html/);
      expect(response.body).toMatch(/Unknown app|Unexpected return address/);
      expect(response.body).not.toMatch(/\n\s+at /);
    }
  });

  it('refuses implicit and hybrid response types with an OAuth error at the redirect URI', async () => {
    for (const responseType of ['token', 'id_token', 'code id_token', 'code token']) {
      const response = await authorize({ client_id: 'rp', redirect_uri: CALLBACK, response_type: responseType, nonce: 'n' });
      expect(response.status).toBeLessThan(500);
      const location = new URL(response.location ?? 'about:blank');
      expect(location.origin + location.pathname).toBe(CALLBACK);
      expect(location.searchParams.get('error') ?? new URLSearchParams(location.hash.slice(1)).get('error')).toBe('unsupported_response_type');
    }
  });

  it('answers junk at the token endpoint with OAuth error JSON', async () => {
    const basic = `Basic ${Buffer.from(`rp:${secret}`).toString('base64')}`;
    const cases: Array<{ body: string; type?: string; auth?: string; error: string }> = [
      { body: 'grant_type=password&username=a&password=b', auth: basic, error: 'unsupported_grant_type' },
      { body: 'grant_type=implicit', auth: basic, error: 'unsupported_grant_type' },
      { body: 'grant_type=authorization_code&code=nope&redirect_uri=' + encodeURIComponent(CALLBACK), auth: basic, error: 'invalid_grant' },
      { body: 'grant_type=refresh_token&refresh_token=nope', auth: basic, error: 'invalid_grant' },
      { body: 'grant_type=authorization_code', auth: basic, error: 'invalid_request' },
      { body: '%%%&&&===', auth: basic, error: 'invalid_request' },
      { body: '{"grant_type":"client_credentials"}', type: 'application/json', auth: basic, error: 'invalid_request' },
      { body: 'grant_type=client_credentials', auth: 'Basic !!!not-base64', error: 'invalid_request' },
      { body: 'grant_type=client_credentials', auth: `Basic ${Buffer.from('rp:wrong').toString('base64')}`, error: 'invalid_client' },
      { body: `grant_type=authorization_code&code=${'x'.repeat(5000)}&redirect_uri=x`, auth: basic, error: 'invalid_grant' },
      { body: 'grant_type=authorization_code&grant_type=refresh_token', auth: basic, error: 'invalid_request' },
    ];
    for (const testCase of cases) {
      const response = await fetch(`${idp.issuer}/token`, {
        method: 'POST',
        headers: {
          'content-type': testCase.type ?? 'application/x-www-form-urlencoded',
          ...(testCase.auth ? { authorization: testCase.auth } : {}),
        },
        body: testCase.body,
      });
      expect(response.status, testCase.body).toBeGreaterThanOrEqual(400);
      expect(response.status, testCase.body).toBeLessThan(500);
      const json = (await response.json()) as { error: string };
      expect(json.error, testCase.body).toBe(testCase.error);
    }
  });

  it('answers junk at the authorization endpoint, userinfo, introspection and revocation without a 5xx', async () => {
    const probes: Array<[string, RequestInit?]> = [
      [`/auth`],
      [`/auth?client_id=rp&redirect_uri=${encodeURIComponent(CALLBACK)}&response_type=code&scope=openid&code_challenge=short&code_challenge_method=S256`],
      [`/auth?client_id=${'%00'.repeat(10)}`],
      [`/auth?client_id=rp&client_id=other`],
      [`/auth?client_id=rp&redirect_uri=${encodeURIComponent(CALLBACK)}&response_type=code&scope=openid&state=%00&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256`],
      [`/auth?request=not.a.jwt&client_id=rp`],
      [`/me`],
      [`/me`, { headers: { authorization: 'Bearer garbage' } }],
      [`/token/introspection`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x' }],
      [`/token/revocation`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=x&client_id=nobody' }],
      [`/session/end?id_token_hint=garbage`],
      [`/session/end?post_logout_redirect_uri=https://attacker.example/`],
      [`/interaction/does-not-exist`],
      [`/interaction/%00`],
      [`/interaction/does-not-exist/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'email=a&password=b' }],
      [`/.well-known/openid-configuration/../../etc/passwd`],
    ];
    for (const [path, init] of probes) {
      const response = await fetch(`${idp.issuer}${path}`, { redirect: 'manual', ...init });
      const text = await response.text();
      expect(response.status, path).toBeLessThan(500);
      expect(text, path).not.toMatch(/\n\s+at /);
    }
    const health = await fetch(`${idp.issuer}/healthz`);
    expect(health.status).toBe(200);
  });
});
