import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressedBrowser, type Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/*
 * A plan's desktop_devices held by the device authorization grant, over HTTP, and /account showing the
 * plan, this period's usage and the devices in use. On Postgres and on the embedded store; the
 * server's clock is the test's (mid-December, so the period resets on 1 January).
 */

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const bob = { email: 'bob@example.com', password: 'correct horse battery staple' };
const carol = { email: 'carol@example.com', password: 'another long passphrase' };

describe.each(['embedded', 'postgres'] as const)('desktop devices by device code, and /account (%s)', (setup) => {
  let idp: TestServer;
  let config: oidc.Configuration;
  let bobId: string;
  let carolId: string;
  let addresses = 0;
  const nextBrowser = () => new AddressedBrowser(`198.51.100.${(addresses += 1)}`);

  beforeAll(async () => {
    idp = await startTestServer(setup, { TRUST_PROXY: 'loopback' }, { start: { now: () => new Date('2031-12-15T12:00:00Z') } });
    bobId = (await idp.createUser(bob)).id;
    carolId = (await idp.createUser(carol)).id;
    await idp.server.libraries.plans.save({ id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] }, { kind: 'administrator' });
    await idp.server.libraries.plans.save({ id: 'solo', name: 'Solo', limits: {}, desktop_devices: 0 }, { kind: 'administrator' });
    await idp.registerClient({
      client_id: 'desktop',
      client_name: 'JobSwipe Desktop',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
      grant_types: ['authorization_code', 'refresh_token', DEVICE_GRANT],
      first_party: true,
    });
    config = await oidc.discovery(new URL(idp.issuer), 'desktop', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] });
  });

  afterAll(async () => {
    await idp?.stop();
  });

  /** Enters a device's code in `browser` and confirms it: the response, or the redirect to the interaction with `stopAtInteraction`. */
  async function confirmCode(browser: Browser, userCode: string, options: { stopAtInteraction?: boolean } = {}) {
    const form = await browser.follow(`${idp.issuer}/device`);
    const confirm = await browser.request(`${idp.issuer}/device`, { form: { xsrf: hiddenField(form.body, 'xsrf'), _csrf: hiddenField(form.body, '_csrf'), user_code: userCode } });
    expect(confirm.body).toContain('Sign in to JobSwipe Desktop?');
    return browser.follow(
      formAction(confirm.body, idp.issuer),
      options.stopAtInteraction ? (url) => new URL(url).pathname.startsWith('/interaction/') : undefined,
      { form: { xsrf: hiddenField(confirm.body, 'xsrf'), _csrf: hiddenField(confirm.body, '_csrf'), user_code: userCode, confirm: 'yes' } },
    );
  }

  /** Enters a device's code in `browser` and confirms it, signing in when asked: the last page. */
  async function approve(browser: Browser, userCode: string, credentials?: { email: string; password: string }) {
    let page = await confirmCode(browser, userCode);
    if (page.body.includes('name="password"')) {
      if (!credentials) throw new Error('login form shown but no credentials given');
      page = await browser.follow(formAction(page.body, idp.issuer), undefined, { form: { _csrf: hiddenField(page.body, '_csrf'), ...credentials } });
    }
    return page;
  }

  const poll = (device: oidc.DeviceAuthorizationResponse) => oidc.pollDeviceAuthorizationGrant(config, { ...device, interval: 0.1 });
  const setPlan = (userId: string, plan: string) => idp.server.libraries.plans.setPlan(userId, plan, { kind: 'administrator' });
  const limitRows = async () =>
    idp.server.database.db.selectFrom('audit_events').selectAll().where('event_type', '=', 'device.limit_reached').orderBy('id').execute();

  it('holds the device flow to the plan: a second device is refused, even from the same browser, and the device gets access_denied', async () => {
    await setPlan(bobId, 'free');
    const browser = nextBrowser();
    const first = await oidc.initiateDeviceAuthorization(config, { scope: 'openid offline_access' });
    expect((await approve(browser, first.user_code, bob)).body).toContain('Your device is signed in');
    const firstTokens = await poll(first);

    // Another device, approved in the same browser: a device of its own, not the first one's grant.
    const second = await oidc.initiateDeviceAuthorization(config, { scope: 'openid offline_access' });
    const refused = await approve(browser, second.user_code);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('Your Free plan allows 1 desktop device<');
    expect(refused.body).toContain('href="/account"');
    const cancelled = await browser.follow(formAction(refused.body, idp.issuer), undefined, { form: { _csrf: hiddenField(refused.body, '_csrf') } });
    expect(cancelled.status).toBeLessThan(500);
    await expect(poll(second)).rejects.toMatchObject({ error: 'access_denied' });
    expect((await limitRows()).at(-1)).toMatchObject({ user_id: bobId, client_id: 'desktop', outcome: 'failure' });
    expect((await limitRows()).at(-1)?.details).toMatchObject({ plan: 'free', limit: 1, in_use: 1, device_code: true });

    // The first device is untouched.
    expect((await oidc.refreshTokenGrant(config, firstTokens.refresh_token ?? '')).access_token).toBeTruthy();

    // A bigger plan has room: the next device signs in, and /account counts both.
    await setPlan(bobId, 'pro');
    const third = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    expect((await approve(browser, third.user_code)).body).toContain('Your device is signed in');
    await poll(third);
    const account = await browser.follow(`${idp.issuer}/account`);
    expect(account.body).toContain('2 of 3 desktop devices in use');
  });

  it('lets only the limit through when devices sign in at the same moment', async () => {
    await setPlan(carolId, 'free');
    // Signed in to the provider first (on /account, not a desktop app), so the approvals race at consent.
    const browsers = await Promise.all([1, 2, 3, 4].map(async () => {
      const browser = nextBrowser();
      const login = await browser.follow(`${idp.issuer}/account`);
      const account = await browser.follow(formAction(login.body, idp.issuer), undefined, { form: { _csrf: hiddenField(login.body, '_csrf'), ...carol } });
      expect(account.body).toContain('0 of 1 desktop device in use');
      return browser;
    }));
    const devices = await Promise.all(browsers.map(() => oidc.initiateDeviceAuthorization(config, { scope: 'openid' })));
    const consents = await Promise.all(devices.map((device, index) => confirmCode(browsers[index]!, device.user_code, { stopAtInteraction: true })));
    // Every consent step at once: each passes the first check before any grant exists.
    const pages = await Promise.all(consents.map((consent, index) => browsers[index]!.follow(consent.location ?? '')));
    const signedIn = pages.filter((page) => page.body.includes('Your device is signed in'));
    expect(signedIn.length).toBeLessThanOrEqual(1);
    expect(pages.every((page) => page.status < 500)).toBe(true);
    expect((await idp.server.libraries.sessions.desktopDevices(carolId)).length).toBe(signedIn.length);
  });

  it('shows a plan without desktop devices as such', async () => {
    await setPlan(carolId, 'solo');
    await idp.server.libraries.sessions.revokeAll(carolId, 'revoked by administrator');
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid' });
    const refused = await approve(nextBrowser(), device.user_code, carol);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('Your Solo plan allows 0 desktop devices<');
    expect(refused.body).toContain('Desktop sign-ins are not part of your plan');
  });

  it('shows the plan, this period’s usage and the desktop devices on /account, and signs one out', async () => {
    await setPlan(bobId, 'pro');
    await idp.server.libraries.sessions.revokeAll(bobId, 'revoked by administrator');
    for (let job = 0; job < 12; job += 1) {
      await idp.server.libraries.plans.record({ clientId: 'applier', userId: bobId, meter: 'applications', quantity: 1, idempotencyKey: `job-${job}` });
    }
    const browser = nextBrowser();
    const device = await oidc.initiateDeviceAuthorization(config, { scope: 'openid offline_access' });
    expect((await approve(browser, device.user_code, bob)).body).toContain('Your device is signed in');
    const tokens = await poll(device);

    const account = await browser.follow(`${idp.issuer}/account`);
    expect(account.status).toBe(200);
    expect(account.body).toContain('data-plan-id="pro"');
    expect(account.body).toContain('12 of 500 applications, resets on 1 January');
    expect(account.body).toContain('1 of 3 desktop devices in use');
    expect(account.body).toContain('JobSwipe Desktop');

    const action = /action="(\/account\/devices\/[^"]+\/sign-out)"/.exec(account.body)?.[1];
    expect(action).toBeTruthy();
    const signedOut = await browser.follow(`${idp.issuer}${action}`, undefined, { form: { _csrf: hiddenField(account.body, '_csrf') } });
    expect(signedOut.body).toContain('That desktop device is signed out');
    expect(signedOut.body).toContain('0 of 3 desktop devices in use');
    await expect(oidc.refreshTokenGrant(config, tokens.refresh_token ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });
    const audit = await idp.server.database.db.selectFrom('audit_events').selectAll().where('event_type', '=', 'account.device_signed_out').execute();
    expect(audit.at(-1)).toMatchObject({ user_id: bobId, client_id: 'desktop' });

    // Another user's device, or no device at all, cannot be signed out from here.
    const again = await browser.follow(`${idp.issuer}/account`);
    const foreign = await browser.follow(`${idp.issuer}${action}`, undefined, { form: { _csrf: hiddenField(again.body, '_csrf') } });
    expect(foreign.body).toContain('already gone');
    const malformed = await browser.request(`${idp.issuer}/account/devices/${'x'.repeat(300)}/sign-out`, { form: { _csrf: hiddenField(again.body, '_csrf') } });
    expect(malformed.status).toBe(404);
  });
});
