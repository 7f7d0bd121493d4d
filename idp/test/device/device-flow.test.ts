import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressedBrowser, Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import type { AuditRow } from '../../src/audit/log.ts';
import { USED_CODE, WRONG_CODE } from '../../src/interactions/device-codes.ts';
import { escapeHtml } from '../../src/pages/html.ts';
import { LIMITS } from '../../src/security/limits.ts';

/**
 * The device authorization grant (RFC 8628) at the provider: discovery, our user-code page (CSRF,
 * per-IP limit on wrong codes, clear errors), then login, the success page and the token.
 */
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

describe.each(['embedded', 'postgres+redis'] as const)('device authorization grant (%s)', (setup) => {
  let idp: TestServer;
  let config: oidc.Configuration;
  let addresses = 0;
  const nextBrowser = () => new AddressedBrowser(`198.51.100.${(addresses += 1)}`);

  beforeAll(async () => {
    idp = await startTestServer(setup, { TRUST_PROXY: 'loopback' });
    await idp.createUser(alice);
    await idp.registerClient({
      client_id: 'worker',
      client_name: 'Automation worker',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
      first_party: true,
    });
    config = await oidc.discovery(new URL(idp.issuer), 'worker', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });

  afterAll(async () => {
    await idp?.stop();
  });

  async function auditRows(type: string): Promise<AuditRow[]> {
    return idp.server.database.db.selectFrom('audit_events').selectAll().where('event_type', '=', type).orderBy('id').execute();
  }

  /** Opens the code page and returns its form fields. */
  async function codePage(browser: Browser, url = `${idp.issuer}/device`) {
    const page = await browser.follow(url);
    expect(page.status).toBe(200);
    return { page, xsrf: hiddenField(page.body, 'xsrf'), csrf: hiddenField(page.body, '_csrf') };
  }

  it('is advertised in discovery', () => {
    expect(config.serverMetadata().device_authorization_endpoint).toBe(`${idp.issuer}/device/auth`);
    expect(config.serverMetadata().grant_types_supported).toContain(DEVICE_GRANT);
  });

  it('signs a device in: code, confirmation, login, success page, then tokens', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid email offline_access' });
    expect(device.verification_uri).toBe(`${idp.issuer}/device`);
    const browser = nextBrowser();
    const { xsrf, csrf } = await codePage(browser);

    // Typed in lower case with a space: the provider's normalisation accepts it.
    const confirm = await browser.request(`${idp.issuer}/device`, { form: { xsrf, _csrf: csrf, user_code: device.user_code.toLowerCase().replace('-', ' ') } });
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain('Sign in to Automation worker?');
    const login = await browser.follow(formAction(confirm.body, idp.issuer), undefined, {
      form: { xsrf: hiddenField(confirm.body, 'xsrf'), _csrf: hiddenField(confirm.body, '_csrf'), user_code: hiddenField(confirm.body, 'user_code'), confirm: 'yes' },
    });
    expect(login.body).toContain('name="password"');
    const done = await browser.follow(formAction(login.body, idp.issuer), undefined, {
      form: { _csrf: hiddenField(login.body, '_csrf'), email: alice.email, password: alice.password },
    });
    expect(done.status).toBe(200);
    expect(done.body).toContain('Your device is signed in');

    const tokens = await oidc.pollDeviceAuthorizationGrant(config, { ...device, interval: 0.1 });
    expect(tokens.claims()?.['email']).toBe(alice.email);
    expect(tokens.refresh_token).toBeTruthy();
    expect((await auditRows('device.approved')).at(-1)).toMatchObject({ client_id: 'worker', outcome: 'success' });
    expect((await auditRows('token.issued')).at(-1)?.details).toMatchObject({ grant_type: DEVICE_GRANT });

    // The code is spent: entering it again says so.
    const again = await codePage(browser);
    const used = await browser.request(`${idp.issuer}/device`, { form: { xsrf: again.xsrf, _csrf: again.csrf, user_code: device.user_code } });
    expect(used.status).toBe(400);
    expect(used.body).toContain(escapeHtml(USED_CODE));
  });

  it('puts the code of verification_uri_complete in the form without submitting it', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const browser = nextBrowser();
    const page = await browser.follow(device.verification_uri_complete ?? '');
    expect(page.status).toBe(200);
    expect(page.body).toContain(`value="${device.user_code}"`);
    expect(page.body).not.toContain('<script');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'none'");
  });

  it('refuses a form without our CSRF token, before looking at the code', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const browser = nextBrowser();
    const { xsrf, csrf } = await codePage(browser);
    const missing = await browser.request(`${idp.issuer}/device`, { form: { xsrf, user_code: device.user_code } });
    expect(missing.status).toBe(403);
    const forged = await browser.request(`${idp.issuer}/device`, { form: { xsrf, _csrf: `${csrf.slice(0, -2)}xx`, user_code: device.user_code } });
    expect(forged.status).toBe(403);
    // From another browser (no CSRF cookie), as a cross-site post would be.
    const other = await nextBrowser().request(`${idp.issuer}/device`, { form: { xsrf, _csrf: csrf, user_code: device.user_code } });
    expect(other.status).toBe(403);
    // Nothing reached the provider: the code can still be used.
    const fine = await browser.request(`${idp.issuer}/device`, { form: { xsrf, _csrf: csrf, user_code: device.user_code } });
    expect(fine.body).toContain('Sign in to Automation worker?');
  });

  it('answers an unknown resume page or a wrong provider xsrf with a page, never a 500', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const resume = await nextBrowser().request(`${idp.issuer}/device/no-such-interaction`);
    expect(resume.status).toBeLessThan(500);
    expect(resume.body).toContain('Connect a device');
    const browser = nextBrowser();
    const { csrf } = await codePage(browser);
    const wrongXsrf = await browser.request(`${idp.issuer}/device`, { form: { xsrf: 'not-the-secret', _csrf: csrf, user_code: device.user_code } });
    expect(wrongXsrf.status).toBeLessThan(500);
    expect(wrongXsrf.body).not.toContain('Sign in to Automation worker?');
  });

  it('limits wrong codes per IP, and then refuses even a right one', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const browser = nextBrowser();
    const { xsrf, csrf } = await codePage(browser);
    const before = (await auditRows('device.code_rejected')).length;
    for (let attempt = 0; attempt < LIMITS['device-code-ip'].points; attempt += 1) {
      const wrong = await browser.request(`${idp.issuer}/device`, { form: { xsrf, _csrf: csrf, user_code: 'BBBB-BBBB' } });
      expect(wrong.status).toBe(400);
      expect(wrong.body).toContain(escapeHtml(WRONG_CODE));
    }
    const limited = await browser.request(`${idp.issuer}/device`, { form: { xsrf, _csrf: csrf, user_code: device.user_code } });
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(limited.body).toContain('Too many wrong codes');
    expect((await auditRows('device.code_rejected')).length - before).toBe(LIMITS['device-code-ip'].points);
    expect((await auditRows('device.rate_limited')).length).toBeGreaterThan(0);

    // Another address is not affected.
    const elsewhere = nextBrowser();
    const fields = await codePage(elsewhere);
    const ok = await elsewhere.request(`${idp.issuer}/device`, { form: { xsrf: fields.xsrf, _csrf: fields.csrf, user_code: device.user_code } });
    expect(ok.status).toBe(200);
  });

  it('records a cancelled confirmation and tells the device', async () => {
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const browser = nextBrowser();
    const { xsrf, csrf } = await codePage(browser);
    const confirm = await browser.request(`${idp.issuer}/device`, { form: { xsrf, _csrf: csrf, user_code: device.user_code } });
    const cancelled = await browser.request(`${idp.issuer}/device`, {
      form: { xsrf: hiddenField(confirm.body, 'xsrf'), _csrf: hiddenField(confirm.body, '_csrf'), user_code: device.user_code, abort: 'yes' },
    });
    expect(cancelled.body).toContain('You cancelled');
    expect((await auditRows('device.denied')).length).toBeGreaterThan(0);
    await expect(oidc.pollDeviceAuthorizationGrant(config, { ...device, interval: 0.1 })).rejects.toMatchObject({ error: 'access_denied' });
  });
});
