import * as oidc from 'openid-client';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressedBrowser, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { createAccountTokens } from '../../src/users/account-tokens.ts';
import { mailCatcher, type MailCatcher } from '../accounts/mail-catcher.ts';

/**
 * A forged form, posted from another site with the victim's cookies, is refused 403 on every form we
 * own, whether its CSRF token is missing, empty, doubled or wrong, and changes nothing: no session, no
 * grant, no account, no password, no address, no mail, no spent link, no counted attempt, no audit row.
 */
const BOB = { email: 'bob@example.com', password: 'bob has a long passphrase' };
const CAROL = { email: 'carol@example.com', password: 'carol has a long passphrase' };
const DANA = { email: 'dana@example.com', password: 'dana is not verified yet' };
const NEW_PASSWORD = 'a brand new passphrase';
const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

type TokenVariant = 'missing' | 'empty' | 'doubled' | 'wrong';
const VARIANTS: TokenVariant[] = ['missing', 'empty', 'doubled', 'wrong'];

interface ForgedForm {
  name: string;
  /** The browser whose cookies the forgery rides on. */
  victim: () => AddressedBrowser;
  path: () => string;
  fields: () => Record<string, string>;
  /** Our `_csrf`, or the provider's own `xsrf` (logout confirmation). */
  tokenField: '_csrf' | 'xsrf';
  /** A token that would be accepted, for the doubled variant (twice the right token is still refused). */
  realToken: () => string;
}

let idp: TestServer;
let mail: MailCatcher;
let rp: RelyingParty;
const fx = {} as {
  login: { browser: AddressedBrowser; uid: string; csrf: string };
  bob: { browser: AddressedBrowser; csrf: string; sessionUid: string; consentUid: string; consentCsrf: string; logoutXsrf: string; deviceXsrf: string; deviceCsrf: string; userCode: string };
  dana: { browser: AddressedBrowser; csrf: string; verifyToken: string };
  signedUp: { browser: AddressedBrowser; uid: string; csrf: string };
  carolResetToken: string;
  bobEmailToken: string;
  /** A valid token for another browser's secret: what a forger can get for themselves. */
  othersCsrf: string;
};

/** A raw POST with the browser's cookies (Browser.request cannot send a field twice). */
async function post(browser: AddressedBrowser, path: string, pairs: Array<[string, string]>) {
  const url = `${idp.issuer}${path}`;
  const cookie = await browser.jar.getCookieString(url);
  const ip = browser.ip;
  const response = await fetch(url, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, 'x-forwarded-for': ip, accept: 'text/html' },
    body: new URLSearchParams(pairs).toString(),
  });
  return { status: response.status, body: await response.text() };
}

/** Everything a form could change, as one comparable value. */
async function state() {
  const { db } = idp.server.database;
  const users = await db.selectFrom('users').select(['id', 'email', 'name', 'password_hash', 'email_verified', 'disabled_at']).orderBy('id').execute();
  const tokens = await sql<{ row: string }>`SELECT md5(t::text) AS row FROM account_tokens t ORDER BY 1`.execute(db);
  // The provider saves a session again, with a later expiry, on every request to its routes (a sliding session).
  const models = await sql<{ row: string }>`
    SELECT model, id, md5((CASE WHEN model = 'Session' THEN payload - 'exp' - 'iat' ELSE payload END)::text) AS payload, consumed_at
    FROM oidc_models ORDER BY model, id`.execute(db);
  const sessions = await sql<{ row: string }>`SELECT md5(s::text) AS row FROM user_sessions s ORDER BY 1`.execute(db);
  const limits = await sql<{ row: string }>`SELECT md5(r::text) AS row FROM rate_limits r ORDER BY 1`.execute(db);
  const audit = await db.selectFrom('audit_events').select((eb) => eb.fn.countAll<string>().as('count')).executeTakeFirstOrThrow();
  return { users, tokens: tokens.rows, models: models.rows, sessions: sessions.rows, limits: limits.rows, audit: audit.count, mails: mail.mails.length };
}

const FORMS: ForgedForm[] = [
  { name: 'login', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/login`, fields: () => ({ ...CAROL }), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'sign-up', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/signup`, fields: () => ({ email: 'mallory@example.com', name: 'M', password: NEW_PASSWORD }), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'sign-up: Continue', victim: () => fx.signedUp.browser, path: () => `/interaction/${fx.signedUp.uid}/signup/continue`, fields: () => ({}), tokenField: '_csrf', realToken: () => fx.signedUp.csrf },
  { name: 'sign-up: Resend the email', victim: () => fx.signedUp.browser, path: () => `/interaction/${fx.signedUp.uid}/signup/resend`, fields: () => ({}), tokenField: '_csrf', realToken: () => fx.signedUp.csrf },
  { name: 'social login: Continue with an upstream', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/upstream/google/start`, fields: () => ({}), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'social login: Link and continue', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/upstream/link`, fields: () => ({ password: CAROL.password }), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'consent', victim: () => fx.bob.browser, path: () => `/interaction/${fx.bob.consentUid}/consent`, fields: () => ({ decision: 'allow' }), tokenField: '_csrf', realToken: () => fx.bob.consentCsrf },
  { name: 'device limit: return to the app', victim: () => fx.bob.browser, path: () => `/interaction/${fx.bob.consentUid}/cancel`, fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.consentCsrf },
  { name: 'logout confirmation', victim: () => fx.bob.browser, path: () => '/session/end/confirm', fields: () => ({ logout: 'yes' }), tokenField: 'xsrf', realToken: () => fx.bob.logoutXsrf },
  { name: 'device code', victim: () => fx.bob.browser, path: () => '/device', fields: () => ({ xsrf: fx.bob.deviceXsrf, user_code: fx.bob.userCode, confirm: 'yes' }), tokenField: '_csrf', realToken: () => fx.bob.deviceCsrf },
  { name: 'verification with the password', victim: () => fx.dana.browser, path: () => '/verify-email', fields: () => ({ token: fx.dana.verifyToken, password: DANA.password }), tokenField: '_csrf', realToken: () => fx.dana.csrf },
  { name: 'verification: Set a new password instead', victim: () => fx.dana.browser, path: () => '/verify-email/new-password', fields: () => ({ token: fx.dana.verifyToken }), tokenField: '_csrf', realToken: () => fx.dana.csrf },
  { name: 'verification: Send me a new link', victim: () => fx.dana.browser, path: () => '/verify-email/resend', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.dana.csrf },
  { name: 'forgot password', victim: () => fx.bob.browser, path: () => '/forgot-password', fields: () => ({ email: CAROL.email }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'reset password', victim: () => fx.bob.browser, path: () => '/reset-password', fields: () => ({ token: fx.carolResetToken, password: NEW_PASSWORD }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: sign out other sessions', victim: () => fx.bob.browser, path: () => '/account/sessions/sign-out-others', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: sign out a session', victim: () => fx.bob.browser, path: () => `/account/sessions/${fx.bob.sessionUid}/sign-out`, fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: sign out a desktop device', victim: () => fx.bob.browser, path: () => '/account/devices/some-grant/sign-out', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: revoke an app', victim: () => fx.bob.browser, path: () => '/account/apps/partner/revoke', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: unlink a sign-in method', victim: () => fx.bob.browser, path: () => '/account/upstreams/google/unlink', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: change password', victim: () => fx.bob.browser, path: () => '/account/password', fields: () => ({ current_password: BOB.password, password: NEW_PASSWORD }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: change email', victim: () => fx.bob.browser, path: () => '/account/email', fields: () => ({ current_password: BOB.password, email: 'bob.new@example.com' }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: confirm the email change', victim: () => fx.bob.browser, path: () => '/account/email/confirm', fields: () => ({ token: fx.bobEmailToken }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: download my data', victim: () => fx.bob.browser, path: () => '/account/export', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: delete', victim: () => fx.bob.browser, path: () => '/account/delete', fields: () => ({ current_password: BOB.password }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: set up authenticator app', victim: () => fx.bob.browser, path: () => '/account/two-factor/totp/setup', fields: () => ({ current_password: BOB.password }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: turn on the authenticator app', victim: () => fx.bob.browser, path: () => '/account/two-factor/totp/enable', fields: () => ({ code: '123456' }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: turn off the authenticator app', victim: () => fx.bob.browser, path: () => '/account/two-factor/totp/disable', fields: () => ({ current_password: BOB.password, code: '123456' }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: add a passkey', victim: () => fx.bob.browser, path: () => '/account/passkeys', fields: () => ({ current_password: BOB.password, name: 'Forged', credential: '{}' }), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'account: remove a passkey', victim: () => fx.bob.browser, path: () => '/account/passkeys/some-passkey/remove', fields: () => ({}), tokenField: '_csrf', realToken: () => fx.bob.csrf },
  { name: 'sign-in: second factor code', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/second-factor`, fields: () => ({ code: '123456' }), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'sign-in: passkey', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/passkey`, fields: () => ({ credential: '{}' }), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'sign-in: set up authenticator app', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/enrol`, fields: () => ({ code: '123456' }), tokenField: '_csrf', realToken: () => fx.login.csrf },
  { name: 'sign-in: continue after the recovery codes', victim: () => fx.login.browser, path: () => `/interaction/${fx.login.uid}/enrol/continue`, fields: () => ({}), tokenField: '_csrf', realToken: () => fx.login.csrf },
];

function forgedPairs(form: ForgedForm, variant: TokenVariant): Array<[string, string]> {
  const fields = Object.entries(form.fields());
  const real = form.realToken();
  switch (variant) {
    case 'missing':
      return fields;
    case 'empty':
      return [[form.tokenField, ''], ...fields];
    case 'doubled':
      return [[form.tokenField, real], [form.tokenField, real], ...fields];
    case 'wrong':
      return [[form.tokenField, form.tokenField === 'xsrf' ? 'f'.repeat(48) : fx.othersCsrf], ...fields];
  }
}

describe('forged forms (postgres)', { timeout: 120_000 }, () => {
  beforeAll(async () => {
    mail = await mailCatcher();
    idp = await startTestServer('postgres', { SMTP_URL: mail.url, TRUST_PROXY: 'loopback' });
    const partner = await idp.registerClient({ client_id: 'partner', client_name: 'Partner', redirect_uris: ['https://rp.example/callback'], post_logout_redirect_uris: ['https://rp.example/bye'] });
    await idp.registerClient({ client_id: 'worker', application_type: 'native', token_endpoint_auth_method: 'none', redirect_uris: ['http://127.0.0.1/callback'], grant_types: ['authorization_code', DEVICE_GRANT], first_party: true });
    rp = await relyingParty(idp.issuer, partner);
    const bob = await idp.createUser({ ...BOB, emailVerified: true });
    const carol = await idp.createUser({ ...CAROL, emailVerified: true });
    const dana = await idp.createUser({ ...DANA, emailVerified: false });
    const tokens = createAccountTokens(idp.server.database.db);

    // Bob: signed in (the partner app approved), on /account, a consent prompt, a logout page and the device page open.
    const bobBrowser = new AddressedBrowser();
    const first = await authorizationRequest(rp, 'openid email');
    const callback = await signIn(bobBrowser, idp.issuer, first, rp.redirectUri, BOB);
    const bobTokens = await exchangeCode(rp, first, callback.location!);
    const account = await bobBrowser.request(`${idp.issuer}/account`);
    const consent = await bobBrowser.follow((await authorizationRequest(rp, 'openid email profile', { prompt: 'consent' })).url, (url) => url.startsWith(rp.redirectUri));
    const device = await oidc.initiateDeviceAuthorization(
      await oidc.discovery(new URL(idp.issuer), 'worker', undefined, oidc.None(), { execute: [oidc.allowInsecureRequests] }),
      { scope: 'openid' },
    );
    const devicePage = await bobBrowser.follow(`${idp.issuer}/device`);
    // After the device page: both keep their xsrf secret in the same provider session, the newest wins.
    const logout = await bobBrowser.request(`${idp.issuer}/session/end?id_token_hint=${bobTokens.id_token!}`);
    fx.bob = {
      browser: bobBrowser,
      csrf: hiddenField(account.body, '_csrf'),
      sessionUid: /data-session-uid="([^"]+)"/.exec(account.body)![1]!,
      consentUid: /\/interaction\/([^/"]+)\/consent/.exec(consent.body)![1]!,
      consentCsrf: hiddenField(consent.body, '_csrf'),
      logoutXsrf: hiddenField(logout.body, 'xsrf'),
      deviceXsrf: hiddenField(devicePage.body, 'xsrf'),
      deviceCsrf: hiddenField(devicePage.body, '_csrf'),
      userCode: device.user_code,
    };
    fx.bobEmailToken = await tokens.issue('change_email', { userId: bob.id, email: 'bob.changed@example.com' });
    fx.carolResetToken = await tokens.issue('reset_password', { userId: carol.id });

    // A login page open in a browser nobody signed in to.
    const loginBrowser = new AddressedBrowser();
    const loginPage = await loginBrowser.follow((await authorizationRequest(rp, 'openid')).url);
    fx.login = { browser: loginBrowser, uid: /\/interaction\/([^/"]+)\/login/.exec(loginPage.body)![1]!, csrf: hiddenField(loginPage.body, '_csrf') };

    // Someone who just signed up, on the Check your email page.
    const signupBrowser = new AddressedBrowser();
    const signupLogin = await signupBrowser.follow((await authorizationRequest(rp, 'openid')).url);
    const signupUid = /\/interaction\/([^/"]+)\/login/.exec(signupLogin.body)![1]!;
    const signupForm = await signupBrowser.request(`${idp.issuer}/interaction/${signupUid}/signup`);
    const checkEmail = await signupBrowser.request(`${idp.issuer}/interaction/${signupUid}/signup`, {
      form: { _csrf: hiddenField(signupForm.body, '_csrf'), email: 'erin@example.com', name: 'Erin', password: NEW_PASSWORD },
    });
    expect(checkEmail.body).toContain('Check your email');
    await mail.waitFor('erin@example.com');
    fx.signedUp = { browser: signupBrowser, uid: signupUid, csrf: hiddenField(checkEmail.body, '_csrf') };

    // Dana, unverified, signed in (UNVERIFIED_SIGN_IN), with her verification link open.
    const danaBrowser = new AddressedBrowser();
    await signIn(danaBrowser, idp.issuer, await authorizationRequest(rp, 'openid'), rp.redirectUri, DANA);
    const verifyToken = await tokens.issue('verify_email', { userId: dana.id });
    const verifyPage = await danaBrowser.request(`${idp.issuer}/verify-email?token=${verifyToken}`);
    fx.dana = { browser: danaBrowser, csrf: hiddenField(verifyPage.body, '_csrf'), verifyToken };

    const stranger = await new AddressedBrowser().request(`${idp.issuer}/forgot-password`);
    fx.othersCsrf = hiddenField(stranger.body, '_csrf');
  });

  afterAll(async () => {
    await idp?.stop();
    await mail?.close();
  });

  it.each(FORMS.flatMap((form) => VARIANTS.map((variant) => [form.name, variant, form] as const)))('%s, token %s: 403, nothing changed', async (_name, variant, form) => {
    const before = await state();
    const response = await post(form.victim(), form.path(), forgedPairs(form, variant));
    expect(response.status).toBe(403);
    expect(response.body).toContain('This form has expired');
    // Mail goes out after the answer: give a wrongly accepted form the time to send one.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await state()).toEqual(before);
  });

  it('the same form with its real token goes through (the table is not refused for another reason)', async () => {
    const before = await state();
    const form = FORMS.find((candidate) => candidate.name === 'verification: Set a new password instead')!;
    const response = await post(form.victim(), form.path(), [['_csrf', form.realToken()], ...Object.entries(form.fields())]);
    expect(response.status).toBe(200);
    expect(response.body).toContain('Choose a new password');
    expect(await state()).not.toEqual(before);
  });
});
