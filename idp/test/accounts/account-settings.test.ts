import { readFile } from 'node:fs/promises';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/verify.ts';
import { launchChromium } from '../../../test/support/chromium.ts';
import { backchannelReceiver, type BackchannelReceiver } from '../../../test/support/backchannel.ts';
import { AddressedBrowser, Browser, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, oauthError, registeredRelyingParty, type RelyingParty, signIn, webAppClient } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';


describe.each(['embedded', 'postgres+redis'] as const)('change password, download my data, delete my account (%s)', (setup) => {
  let idp: TestServer;
  let web: RelyingParty;
  let webLogout: BackchannelReceiver;
  let users = 0;

  beforeAll(async () => {
    webLogout = await backchannelReceiver();
    idp = await startTestServer(setup, { TRUST_PROXY: 'loopback' });
    web = await registeredRelyingParty(idp, webAppClient({ backchannel_logout_uri: webLogout.url }));
  });

  afterAll(async () => {
    await idp?.stop();
    webLogout?.server.close();
  });

  const db = () => idp.server.database.db;

  async function newUser() {
    users += 1;
    const user = { email: `user${users}@example.com`, password: `a good passphrase number ${users}` };
    const { id } = await idp.createUser({ ...user, name: `User ${users}` });
    return { ...user, id };
  }

  /** Signs in to `web` in a (new) browser: the callback's status, and the tokens when it got there. */
  async function signedIn(user: { email: string; password: string }, browser: Browser = new AddressedBrowser()) {
    const request = await authorizationRequest(web, 'openid email offline_access');
    const callback = await signIn(browser, idp.issuer, request, web.redirectUri, user);
    return { browser, status: callback.status, tokens: callback.status === 303 ? await exchangeCode(web, request, callback.location!) : undefined };
  }

  async function formCsrf(browser: Browser, path: string): Promise<string> {
    const page = await browser.request(`${idp.issuer}${path}`);
    expect(page.status).toBe(200);
    return hiddenField(page.body, '_csrf');
  }

  const post = (browser: Browser, path: string, form: Record<string, string>) => browser.request(`${idp.issuer}${path}`, { form });

  const auditOf = (userId: string) =>
    db().selectFrom('audit_events').select(['event_type', 'outcome', 'user_id', 'details']).where('user_id', '=', userId).orderBy('id').execute();

  describe('change password', () => {
    it('refuses a wrong current password, and a new one that breaks the password rules, changing nothing', async () => {
      const user = await newUser();
      const { browser, tokens } = await signedIn(user);
      const csrf = await formCsrf(browser, '/account/password');

      const wrong = await post(browser, '/account/password', { _csrf: csrf, current_password: 'not my password at all', password: 'a brand new passphrase' });
      expect(wrong.status).toBe(401);
      expect(wrong.body).toContain('That is not your current password. Nothing was changed.');

      const common = await post(browser, '/account/password', { _csrf: csrf, current_password: user.password, password: 'Password123' });
      expect(common.status).toBe(400);
      expect(common.body).toContain('password is too common');
      const short = await post(browser, '/account/password', { _csrf: csrf, current_password: user.password, password: 'short' });
      expect(short.status).toBe(400);
      expect(short.body).toContain('at least 10 characters');
      const long = await post(browser, '/account/password', { _csrf: csrf, current_password: user.password, password: 'é'.repeat(37) });
      expect(long.status).toBe(400);
      expect(long.body).toContain('at most 72 bytes');

      // Nothing changed: the old password still signs in, the refresh token still works.
      expect((await oidc.refreshTokenGrant(web.config, tokens!.refresh_token!)).access_token).toEqual(expect.any(String));
      expect((await signedIn(user)).status).toBe(303);
      const events = await auditOf(user.id);
      const failures = events.filter((event) => event.event_type === 'account.password_changed');
      expect(failures.map((event) => [event.outcome, event.details['reason']])).toEqual([
        ['failure', 'wrong_password'],
        ['failure', 'rules'],
        ['failure', 'rules'],
        ['failure', 'rules'],
      ]);
    });

    it('counts wrong current passwords like failed sign-ins: the 6th attempt from an IP gets 429, even with the right password', async () => {
      const user = await newUser();
      const { browser } = await signedIn(user);
      const csrf = await formCsrf(browser, '/account/password');
      for (let attempt = 0; attempt < 5; attempt += 1) {
        expect((await post(browser, '/account/password', { _csrf: csrf, current_password: `wrong guess ${attempt}`, password: 'a brand new passphrase' })).status).toBe(401);
      }
      const blocked = await post(browser, '/account/password', { _csrf: csrf, current_password: user.password, password: 'a brand new passphrase' });
      expect(blocked.status).toBe(429);
      expect(blocked.headers.get('retry-after')).toMatch(/^\d+$/);
      // Not changed: the old password still signs in (from another address).
      expect((await signedIn(user)).status).toBe(303);
    });

    it('changes it: the old password fails, the new one works, refresh tokens from before die, other sessions end, this one stays', async () => {
      const user = await newUser();
      const here = await signedIn(user);
      const elsewhere = await signedIn(user);
      const csrf = await formCsrf(here.browser, '/account/password');
      const changed = await post(here.browser, '/account/password', { _csrf: csrf, current_password: user.password, password: 'a brand new passphrase' });
      expect(changed.status).toBe(303);
      expect(changed.location).toBe(`${idp.issuer}/account?notice=password-changed`);

      // This browser is still signed in, and is the only session left.
      const account = await here.browser.request(changed.location!);
      expect(account.status).toBe(200);
      expect(account.body).toContain('Your password is changed.');
      expect([...account.body.matchAll(/data-session-uid="/g)]).toHaveLength(1);
      // The other browser is signed out.
      expect((await elsewhere.browser.request(`${idp.issuer}/account`)).status).toBe(302);

      // Every refresh token from before is dead, this browser's included.
      expect(await oauthError(oidc.refreshTokenGrant(web.config, elsewhere.tokens!.refresh_token!))).toBe('invalid_grant');
      expect(await oauthError(oidc.refreshTokenGrant(web.config, here.tokens!.refresh_token!))).toBe('invalid_grant');

      expect((await signedIn(user)).status).toBe(401);
      expect((await signedIn({ ...user, password: 'a brand new passphrase' })).status).toBe(303);

      const events = await auditOf(user.id);
      const success = events.find((event) => event.event_type === 'account.password_changed');
      expect(success).toMatchObject({ outcome: 'success', details: { sessions: 1 } });
      expect(Number(success!.details['grants'])).toBeGreaterThanOrEqual(2);
    });
  });

  describe('download my data', () => {
    it('answers a JSON attachment with the profile, sessions, apps and audit events, and no hash or token', async () => {
      const user = await newUser();
      const { browser, tokens } = await signedIn(user);
      const csrf = await formCsrf(browser, '/account');
      const answer = await post(browser, '/account/export', { _csrf: csrf });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
      expect(answer.headers.get('content-disposition')).toMatch(/^attachment; filename="jobswipe-account-\d{4}-\d{2}-\d{2}\.json"$/);
      expect(answer.headers.get('cache-control')).toBe('no-store');

      const data = JSON.parse(answer.body);
      expect(data.profile).toMatchObject({ id: user.id, email: user.email, name: `User ${users}`, email_verified: true });
      expect(data.sessions).toHaveLength(1);
      expect(data.sessions[0]).toMatchObject({ ended_at: null, ip: (browser as AddressedBrowser).ip });
      expect(data.connected_apps).toEqual(expect.arrayContaining([expect.objectContaining({ client_id: 'web', scopes: expect.arrayContaining(['openid', 'offline_access']) })]));
      expect(data.audit_events.map((event: { type: string }) => event.type)).toEqual(expect.arrayContaining(['login.success', 'token.issued']));

      expect(answer.body).not.toContain('password');
      expect(answer.body).not.toMatch(/\$2[aby]\$/);
      expect(answer.body).not.toContain(tokens!.refresh_token!);
      expect(answer.body).not.toContain(tokens!.access_token);
      expect(answer.body).not.toContain(tokens!.id_token!);

      const exported = (await auditOf(user.id)).filter((event) => event.event_type === 'account.exported');
      expect(exported).toEqual([expect.objectContaining({ outcome: 'success' })]);
    });

    it('shows another user nothing of this one', async () => {
      const [one, two] = [await newUser(), await newUser()];
      await signedIn(one);
      const { browser } = await signedIn(two);
      const answer = await post(browser, '/account/export', { _csrf: await formCsrf(browser, '/account') });
      expect(answer.status).toBe(200);
      expect(answer.body).not.toContain(one.id);
      expect(answer.body).not.toContain(one.email);
    });
  });

  describe('delete my account', () => {
    it('refuses a wrong password and deletes nothing', async () => {
      const user = await newUser();
      const { browser, tokens } = await signedIn(user);
      const page = await browser.request(`${idp.issuer}/account/delete`);
      expect(page.body).toContain(user.email);
      const refused = await post(browser, '/account/delete', { _csrf: hiddenField(page.body, '_csrf'), current_password: 'not my password at all' });
      expect(refused.status).toBe(401);
      expect(refused.body).toContain('That is not your current password.');
      expect(await db().selectFrom('users').select('id').where('id', '=', user.id).executeTakeFirst()).toBeDefined();
      expect((await oidc.refreshTokenGrant(web.config, tokens!.refresh_token!)).access_token).toEqual(expect.any(String));
      expect((await browser.request(`${idp.issuer}/account`)).status).toBe(200);
    });

    it('deletes it: no sign-in, dead tokens, rows gone, audit rows kept under the uuid, and the chain still verifies', async () => {
      const user = await newUser();
      const { browser, tokens } = await signedIn(user);
      const other = await signedIn(user);
      const logoutsBefore = webLogout.tokens.length;
      const csrf = await formCsrf(browser, '/account/delete');
      const deleted = await post(browser, '/account/delete', { _csrf: csrf, current_password: user.password });
      expect(deleted.status).toBe(200);
      expect(deleted.body).toContain('Your account was deleted');

      // Signed out here and elsewhere, and unable to sign in again.
      expect((await browser.request(`${idp.issuer}/account`)).status).toBe(302);
      expect((await other.browser.request(`${idp.issuer}/account`)).status).toBe(302);
      expect((await signedIn(user)).status).toBe(401);
      expect(await oauthError(oidc.refreshTokenGrant(web.config, tokens!.refresh_token!))).toBe('invalid_grant');
      expect(await oauthError(oidc.refreshTokenGrant(web.config, other.tokens!.refresh_token!))).toBe('invalid_grant');
      expect((await oidc.tokenIntrospection(web.config, tokens!.access_token)).active).toBe(false);

      // The rows are gone.
      expect(await db().selectFrom('users').select('id').where('id', '=', user.id).execute()).toEqual([]);
      expect(await db().selectFrom('user_sessions').select('session_uid').where('user_id', '=', user.id).execute()).toEqual([]);
      expect(await db().selectFrom('oidc_models').select(['model', 'id']).where('account_id', '=', user.id).execute()).toEqual([]);

      // The audit rows stay, under the uuid; the chain is whole.
      const events = await auditOf(user.id);
      expect(events.map((event) => event.event_type)).toEqual(expect.arrayContaining(['login.success', 'token.issued', 'account.deleted']));
      expect(events.at(-1)).toMatchObject({ event_type: 'account.deleted', outcome: 'success', user_id: user.id });
      expect(JSON.stringify(events)).not.toContain(user.email);
      expect(await verifyChain(db())).toMatchObject({ intact: true });

      // The app was told, through back-channel logout (sent in the background).
      for (let wait = 0; wait < 50 && webLogout.tokens.length < logoutsBefore + 2; wait += 1) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(webLogout.tokens.length).toBeGreaterThanOrEqual(logoutsBefore + 2);
    });
  });

  it('refuses each new form without a valid CSRF token (403), changing nothing', async () => {
    const user = await newUser();
    const { browser, tokens } = await signedIn(user);
    await formCsrf(browser, '/account');
    for (const [path, form] of [
      ['/account/password', { current_password: user.password, password: 'a brand new passphrase' }],
      ['/account/export', {}],
      ['/account/delete', { current_password: user.password }],
    ] as const) {
      expect((await post(browser, path, { ...form, _csrf: 'forged' })).status, path).toBe(403);
    }
    // A cross-site page has neither the cookie's secret nor a token: a browser without the CSRF cookie.
    const cookieless = new AddressedBrowser();
    for (const cookie of await browser.jar.getCookies(idp.issuer)) {
      if (!cookie.key.startsWith('jobswipe.csrf')) await cookieless.jar.setCookie(cookie, idp.issuer);
    }
    const csrf = await formCsrf(browser, '/account');
    expect((await post(cookieless, '/account/delete', { _csrf: csrf, current_password: user.password })).status).toBe(403);

    expect(await db().selectFrom('users').select('id').where('id', '=', user.id).executeTakeFirst()).toBeDefined();
    expect((await oidc.refreshTokenGrant(web.config, tokens!.refresh_token!)).access_token).toEqual(expect.any(String));
    expect((await signedIn(user)).status).toBe(303);
    expect((await auditOf(user.id)).filter((event) => event.event_type.startsWith('account.'))).toEqual([]);
  });
});

describe('in headless Chromium: change password, download my data, delete my account (postgres)', () => {
  let idp: TestServer;
  let chromium: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    [idp, chromium] = await Promise.all([startTestServer('postgres'), launchChromium()]);
  });

  afterAll(async () => {
    await chromium?.close();
    await idp?.stop();
  });

  it('walks every form as a user would', async () => {
    const user = { email: 'dora@example.com', password: 'dora has a long passphrase' };
    const { id } = await idp.createUser({ ...user, name: 'Dora' });
    const context = await chromium.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const signInToAccount = async (password: string) => {
      await page.goto(`${idp.issuer}/account`);
      await page.getByLabel('Email').fill(user.email);
      await page.getByLabel('Password').fill(password);
      await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    };
    await signInToAccount(user.password);
    await page.waitForURL(`${idp.issuer}/account`);

    await page.getByRole('link', { name: 'Change password' }).click();
    await page.getByLabel('Current password').fill(user.password);
    await page.getByLabel('New password').fill('dora picked a new passphrase');
    await page.getByRole('button', { name: 'Change password' }).click();
    await page.waitForURL((url) => url.pathname === '/account' && url.searchParams.get('notice') === 'password-changed');
    expect(await page.getByRole('status').textContent()).toContain('Your password is changed.');

    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download my data' }).click()]);
    expect(download.suggestedFilename()).toMatch(/^jobswipe-account-\d{4}-\d{2}-\d{2}\.json$/);
    const path = await download.path();
    const data = JSON.parse(await readFile(path, 'utf8'));
    expect(data.profile).toMatchObject({ id, email: user.email });
    expect(data.audit_events.map((event: { type: string }) => event.type)).toContain('account.password_changed');

    await page.getByRole('link', { name: 'Delete my account' }).click();
    await page.getByLabel('Your password').fill('dora picked a new passphrase');
    await page.getByRole('button', { name: 'Delete my account' }).click();
    expect(await page.getByRole('heading', { level: 1 }).textContent()).toBe('Your account was deleted');

    await signInToAccount('dora picked a new passphrase');
    expect(await page.getByRole('alert').textContent()).toBeTruthy();
    expect(new URL(page.url()).pathname).toMatch(/^\/interaction\//);
    expect(await verifyChain(idp.server.database.db)).toMatchObject({ intact: true });
    await context.close();
  });
});
