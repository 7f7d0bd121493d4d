import * as oidc from 'openid-client';
import { sql } from 'kysely';
import type { Browser as Chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/audit/verify.ts';
import { RESET_REQUESTED } from '../../src/password-reset/views.ts';
import { createAccountTokens } from '../../src/users/account-tokens.ts';
import { AddressedBrowser, Browser, hiddenField } from '../../../test/support/browser.ts';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import { runToExit } from '../../../test/support/processes.ts';
import { authorizationRequest, exchangeCode, oauthError, registeredRelyingParty, type RelyingParty, signIn, webAppClient } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';
import { linkIn, mailCatcher, type MailCatcher } from './mail-catcher.ts';


const until = async (check: () => Promise<boolean>, what: string, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
};

describe.each(['postgres+redis', 'embedded'] as const)('forgot password, reset, change email (%s)', { timeout: 90_000 }, (setup) => {
  let idp: TestServer;
  let mail: MailCatcher;
  let web: RelyingParty;
  let chromium: Promise<Chromium>;
  let users = 0;

  beforeAll(async () => {
    mail = await mailCatcher();
    idp = await startTestServer(setup, { SMTP_URL: mail.url, TRUST_PROXY: 'loopback' });
    web = await registeredRelyingParty(idp, webAppClient());
    if (setup === 'postgres+redis') {
      chromium = launchChromium();
      chromium.catch(() => {});
    }
  });

  afterAll(async () => {
    await (await chromium?.catch(() => undefined))?.close();
    await idp?.stop();
    await mail?.close();
  });

  const db = () => idp.server.database.db;

  async function newUser(options: { emailVerified?: boolean } = {}) {
    users += 1;
    const user = { email: `person${users}@example.com`, password: `the first passphrase ${users}`, name: `Person ${users}` };
    const { id } = await idp.createUser({ ...user, ...options });
    return { ...user, id };
  }

  async function signedIn(user: { email: string; password: string }, browser: Browser = new AddressedBrowser()) {
    const request = await authorizationRequest(web, 'openid email offline_access');
    const callback = await signIn(browser, idp.issuer, request, web.redirectUri, user);
    return { browser, status: callback.status, body: callback.body, tokens: callback.status === 303 ? await exchangeCode(web, request, callback.location!) : undefined };
  }

  async function askForReset(email: string, browser: Browser = new AddressedBrowser()) {
    const form = await browser.request(`${idp.issuer}/forgot-password`);
    expect(form.status).toBe(200);
    const started = performance.now();
    const answer = await browser.request(`${idp.issuer}/forgot-password`, { form: { _csrf: hiddenField(form.body, '_csrf'), email } });
    return { answer, ms: performance.now() - started, browser };
  }

  async function resetWith(link: string, password: string, browser: Browser = new AddressedBrowser()) {
    const form = await browser.request(link);
    if (form.status !== 200) return form;
    return browser.request(`${idp.issuer}/reset-password`, { form: { _csrf: hiddenField(form.body, '_csrf'), token: hiddenField(form.body, 'token'), password } });
  }

  const eventsOf = async (userId: string, prefix: string) =>
    (await db().selectFrom('audit_events').select(['event_type', 'outcome', 'details']).where('user_id', '=', userId).where('event_type', 'like', `${prefix}%`).orderBy('id').execute()).map(
      (row) => `${row.event_type}:${row.outcome}`,
    );

  // One store set-up is enough for the browser; the protocol tests below run on both.
  if (setup === 'postgres+redis') it(
    'in Chromium: Forgot password? -> mailed link -> new password; the old password fails, the new one works, tokens from before are dead',
    async () => {
      const user = await newUser();
      const before = await signedIn(user);
      expect(before.status).toBe(303);
      const refreshBefore = before.tokens!.refresh_token!;

      const context = await (await chromium).newContext({ extraHTTPHeaders: { 'x-forwarded-for': '203.0.113.250' } });
      const page = await context.newPage();
      const errors = watchProviderErrors(page, idp.issuer);
      await page.goto((await authorizationRequest(web, 'openid email')).url);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
      await page.getByRole('link', { name: 'Forgot password?' }).click();
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Reset your password');
      await page.fill('input[name="email"]', user.email);
      await page.getByRole('button', { name: 'Send reset link' }).click();
      expect(await page.getByRole('status').innerText()).toContain(RESET_REQUESTED);
      // "Back to sign in" returns to the same sign-in request.
      expect(await page.getByRole('link', { name: 'Back to sign in' }).getAttribute('href')).toMatch(/^\/interaction\/[A-Za-z0-9_-]+$/);

      const resetMail = await mail.waitFor(user.email);
      expect(resetMail.text).toContain('Reset your JobSwipe password');
      const link = linkIn(resetMail, '/reset-password?token=');
      await page.goto(link);
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Choose a new password');
      await page.fill('input[name="password"]', 'password123');
      await page.getByRole('button', { name: 'Set new password' }).click();
      expect(await page.getByRole('alert').innerText()).toContain('too common');
      // A refused password does not spend the link.
      await page.fill('input[name="password"]', 'my brand new passphrase');
      await page.getByRole('button', { name: 'Set new password' }).click();
      expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Your password is changed');
      expect(errors).toEqual(['400 POST /reset-password']);
      await context.close();

      const notice = await mail.waitFor(user.email, 1);
      expect(notice.text).toContain('Your JobSwipe password was reset');

      expect(await oauthError(oidc.refreshTokenGrant(web.config, refreshBefore))).toBe('invalid_grant');
      // The browser session from before is gone too: a new request asks for the password again.
      const again = await before.browser.follow((await authorizationRequest(web, 'openid')).url);
      expect(again.body).toContain('name="password"');
      const old = await signedIn(user);
      expect(old.status).toBe(401);
      const fresh = await signedIn({ email: user.email, password: 'my brand new passphrase' });
      expect(fresh.status).toBe(303);
      expect(fresh.tokens!.claims()).toMatchObject({ email: user.email, email_verified: true });
      expect(await eventsOf(user.id, 'password.')).toEqual(['password.reset_requested:success', 'password.reset_completed:success']);
      const ended = await db().selectFrom('user_sessions').select(['end_reason']).where('user_id', '=', user.id).where('ended_at', 'is not', null).execute();
      expect(ended.map((row) => row.end_reason)).toContain('password reset');
    },
  );

  if (setup === 'postgres+redis') it('in Chromium: /account shows the address unverified; Change email -> mailed link -> Use this email address', async () => {
    const user = await newUser({ emailVerified: false });
    const context = await (await chromium).newContext({ extraHTTPHeaders: { 'x-forwarded-for': '203.0.113.251' } });
    const page = await context.newPage();
    const errors = watchProviderErrors(page, idp.issuer);
    await page.goto(`${idp.issuer}/account`);
    await page.fill('input[name="email"]', user.email);
    await page.fill('input[name="password"]', user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(`${idp.issuer}/account`);
    const address = page.locator('#email-address');
    expect(await address.innerText()).toContain(`${user.email} Not verified`);
    await page.getByRole('link', { name: 'Change email' }).click();
    const newAddress = `chromium.moved@example.com`;
    await page.fill('input[name="email"]', newAddress);
    await page.fill('input[name="current_password"]', user.password);
    await page.getByRole('button', { name: 'Change email' }).click();
    expect(await page.getByRole('status').innerText()).toContain('We sent a link to the new address');
    expect(await address.innerText()).toContain(user.email);

    await page.goto(linkIn(await mail.waitFor(newAddress), '/account/email/confirm?token='));
    await page.getByRole('button', { name: 'Use this email address' }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Your email address is changed');
    await page.getByRole('link', { name: 'Go to your account' }).click();
    expect(await page.locator('#email-address').innerText()).toContain(`${newAddress} Verified`);
    expect((await mail.waitFor(user.email)).text).toContain(`now uses the address ${newAddress}`);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('a reset link works once, not after an hour, and a reset ends the other links; the link is stored only as a hash', async () => {
    const user = await newUser();
    await askForReset(user.email);
    await askForReset(user.email);
    const first = linkIn(await mail.waitFor(user.email), '/reset-password?token=');
    const second = linkIn(await mail.waitFor(user.email, 1), '/reset-password?token=');
    expect(first).not.toBe(second);
    const stored = await db().selectFrom('account_tokens').select(['token_hash', 'expires_at', 'created_at']).where('user_id', '=', user.id).execute();
    expect(stored.map((row) => row.token_hash)).not.toContain(new URL(first).searchParams.get('token'));
    for (const row of stored) expect(Math.abs(row.expires_at.getTime() - row.created_at.getTime() - 60 * 60 * 1000)).toBeLessThan(5_000);

    const browser = new AddressedBrowser();
    const form = await browser.request(first);
    const fields = { _csrf: hiddenField(form.body, '_csrf'), token: hiddenField(form.body, 'token'), password: 'reset number one here' };
    expect((await browser.request(`${idp.issuer}/reset-password`, { form: fields })).status).toBe(200);
    const reused = await browser.request(`${idp.issuer}/reset-password`, { form: { ...fields, password: 'reset number two here' } });
    expect(reused.status).toBe(400);
    expect(reused.body).toContain('already used');
    expect((await browser.request(first)).status).toBe(400);
    // The other link mailed before the reset ended with it.
    const replaced = await resetWith(second, 'reset number three here');
    expect(replaced.status).toBe(400);
    expect(replaced.body).toContain('a newer reset replaced it');
    expect((await signedIn({ email: user.email, password: 'reset number one here' })).status).toBe(303);

    await askForReset(user.email, new AddressedBrowser());
    const late = linkIn(await mail.waitFor(user.email, 3), '/reset-password?token=');
    const lateForm = await browser.request(late);
    expect(lateForm.status).toBe(200);
    await db().updateTable('account_tokens').set({ expires_at: sql<Date>`now() - interval '1 second'` }).where('user_id', '=', user.id).where('used_at', 'is', null).execute();
    const expired = await browser.request(`${idp.issuer}/reset-password`, {
      form: { _csrf: hiddenField(lateForm.body, '_csrf'), token: hiddenField(lateForm.body, 'token'), password: 'too late for this one' },
    });
    expect(expired.status).toBe(400);
    expect(expired.body).toContain('expired');
    expect((await browser.request(`${idp.issuer}/reset-password?token=${'x'.repeat(43)}`)).body).toContain('not valid');
    expect((await signedIn({ email: user.email, password: 'too late for this one' })).status).toBe(401);
    // The refused submissions (reused, expired) are in the audit log under the link's user.
    expect(await eventsOf(user.id, 'password.reset_rejected')).toEqual(['password.reset_rejected:failure', 'password.reset_rejected:failure']);
  });

  it('answers every address the same (status, text, time), and mails only an existing, active account', async () => {
    const known = await newUser();
    const disabled = await newUser();
    await db().updateTable('users').set({ disabled_at: sql<Date>`now()` }).where('id', '=', disabled.id).execute();
    const normalise = (body: string) => body.replace(/name="_csrf" value="[^"]*"/g, '');
    const runs: Array<{ kind: string; status: number; body: string; ms: number }> = [];
    // The answers take a few ms, and the server, the mail server and this test share one event loop.
    // So the order alternates, and each request's background work (its audit row, and the mail while
    // the address has mails left) is finished before the next request, so neither kind pays for the other.
    const resetRows = async () =>
      Number((await db().selectFrom('audit_events').select((eb) => eb.fn.countAll().as('n')).where('event_type', 'like', 'password.reset%').executeTakeFirstOrThrow()).n);
    let rows = await resetRows();
    let existingAsked = 0;
    for (let round = 0; round < 9; round += 1) {
      const pair = [
        ['existing', known.email],
        ['unknown', `nobody${round}.${setup}@example.com`],
      ] as const;
      for (const [kind, email] of round % 2 === 0 ? pair : [...pair].reverse()) {
        const { answer, ms } = await askForReset(email);
        runs.push({ kind, status: answer.status, body: normalise(answer.body), ms });
        rows += 1;
        if (kind === 'existing') existingAsked += 1;
        const mails = Math.min(existingAsked, 3);
        await until(async () => (await resetRows()) === rows && mail.count(known.email) === mails, 'the background work of a reset request');
      }
    }
    expect(new Set(runs.map((run) => run.status))).toEqual(new Set([200]));
    expect(new Set(runs.map((run) => run.body)).size).toBe(1);
    expect(runs[0]!.body).toContain(RESET_REQUESTED);
    // Load on the machine only ever adds time, in bursts; a difference in the work done adds it to every
    // answer of one kind. So the kinds are compared by their second-fastest answers: within a factor of
    // two (or 10 ms, for answers of a few ms). A password hash for one kind alone would be 100s of ms.
    const fast = (values: number[]) => values.sort((a, b) => a - b)[1]!;
    const [a, b] = [fast(runs.filter((run) => run.kind === 'existing').map((run) => run.ms)), fast(runs.filter((run) => run.kind === 'unknown').map((run) => run.ms))];
    expect(Math.max(a, b) - Math.min(a, b), `${a} ms vs ${b} ms`).toBeLessThan(Math.max(Math.min(a, b), 10));

    // Three mails per address per hour; the other requests got the same answer and no mail.
    await mail.waitFor(known.email, 2);
    await until(async () => (await eventsOf(known.id, 'password.')).length === 9, 'nine audit rows');
    expect(mail.count(known.email)).toBe(3);
    expect(await eventsOf(known.id, 'password.')).toEqual([
      ...Array(3).fill('password.reset_requested:success'),
      ...Array(6).fill('password.reset_rate_limited:failure'),
    ]);
    await askForReset(disabled.email);
    await until(async () => (await eventsOf(disabled.id, 'password.')).length === 1, 'the disabled account audit row');
    expect(await eventsOf(disabled.id, 'password.')).toEqual(['password.reset_requested:failure']);
    expect(mail.count(disabled.email)).toBe(0);
  });

  it('limits reset requests per IP, refuses a bad CSRF token and bad input with 4xx, never 5xx', async () => {
    const browser = new AddressedBrowser();
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 11; attempt += 1) statuses.push((await askForReset(`limit${attempt}@example.com`, browser)).answer.status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(statuses[10]).toBe(429);

    const other = new AddressedBrowser();
    const form = await other.request(`${idp.issuer}/forgot-password?interaction=${'<script>'}`);
    expect(form.body).not.toContain('<script>');
    const csrf = hiddenField(form.body, '_csrf');
    expect((await other.request(`${idp.issuer}/forgot-password`, { form: { _csrf: 'forged', email: 'a@example.com' } })).status).toBe(403);
    const invalid = await other.request(`${idp.issuer}/forgot-password`, { form: { _csrf: csrf, email: 'not an address' } });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toContain('Enter a valid email address.');
    const cookie = await other.jar.getCookieString(`${idp.issuer}/forgot-password`);
    const raw = (path: string, body: string, contentType = 'application/x-www-form-urlencoded') =>
      fetch(`${idp.issuer}${path}`, { method: 'POST', body, headers: { 'content-type': contentType, cookie, 'x-forwarded-for': other.ip } });
    const answers = [
      await raw('/forgot-password', `_csrf=${csrf}&email=a%00b@example.com`),
      await raw('/forgot-password', `_csrf=${csrf}&email[x]=1`),
      await raw('/forgot-password', '{"email":"a@example.com"}', 'application/json'),
      await raw('/reset-password', `_csrf=${csrf}&token=${'%00'.repeat(43)}&password=x`),
      await raw('/reset-password', `_csrf=${csrf}&password=x`),
      await fetch(`${idp.issuer}/reset-password?token=${'%00'.repeat(50)}`),
      await fetch(`${idp.issuer}/reset-password?token=a&token=b`),
    ];
    for (const answer of answers) {
      expect(answer.status, answers.map((each) => each.status).join(' ')).toBeGreaterThanOrEqual(400);
      expect(answer.status, answers.map((each) => each.status).join(' ')).toBeLessThan(500);
    }
  });

  it('`idp users reset-link --email E` prints a working link; unknown and disabled users get an error', async () => {
    const user = await newUser();
    const env = { ...storeEnvironment(idp.store), ISSUER: idp.issuer };
    const cli = await runToExit('idp/src/cli/main.ts', ['users', 'reset-link', '--email', user.email], env, 45_000);
    expect(cli.code, cli.stderr).toBe(0);
    const link = cli.out.at(-1)!;
    expect(link).toMatch(new RegExp(`^${idp.issuer}/reset-password\\?token=[A-Za-z0-9_-]{43}$`));
    const signedInBefore = await signedIn(user);
    expect((await resetWith(link, 'chosen after the admin link')).status).toBe(200);
    expect(await oauthError(oidc.refreshTokenGrant(web.config, signedInBefore.tokens!.refresh_token!))).toBe('invalid_grant');
    expect((await signedIn({ email: user.email, password: 'chosen after the admin link' })).status).toBe(303);
    const unknown = await runToExit('idp/src/cli/main.ts', ['users', 'reset-link', '--email', 'no.such.user@example.com'], env, 45_000);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no user with email no.such.user@example.com');
    const admin = await db().selectFrom('audit_events').select(['event_type']).where('user_id', '=', user.id).where('event_type', '=', 'admin.reset_link_issued').execute();
    expect(admin).toHaveLength(1);
  });

  it('change email: the password again, a link to the new address; the change waits for it; the old address is told', async () => {
    const user = await newUser({ emailVerified: false });
    const { browser } = await signedIn(user);
    const account = await browser.request(`${idp.issuer}/account`);
    expect(account.body).toContain('Not verified');
    expect(account.body).toContain('Resend verification email');
    const page = await browser.request(`${idp.issuer}/account/email`);
    const csrf = hiddenField(page.body, '_csrf');
    const newAddress = `moved${users}.${setup}@example.com`;

    const wrong = await browser.request(`${idp.issuer}/account/email`, { form: { _csrf: csrf, email: newAddress, current_password: 'not the password' } });
    expect(wrong.status).toBe(401);
    expect((await browser.request(`${idp.issuer}/account/email`, { form: { _csrf: csrf, email: user.email, current_password: user.password } })).status).toBe(400);
    expect((await browser.request(`${idp.issuer}/account/email`, { form: { _csrf: 'forged', email: newAddress, current_password: user.password } })).status).toBe(403);
    // A verification link mailed to the old address must not verify the new one later.
    const verifyOld = await createAccountTokens(db()).issue('verify_email', { userId: user.id });
    const asked = await browser.request(`${idp.issuer}/account/email`, { form: { _csrf: csrf, email: newAddress, current_password: user.password } });
    expect(asked.status).toBe(303);
    expect(asked.location).toBe(`${idp.issuer}/account?notice=email-change-sent`);
    expect((await browser.request(asked.location!)).body).toContain('We sent a link to the new address');

    const link = linkIn(await mail.waitFor(newAddress), '/account/email/confirm?token=');
    // Not yet: the account keeps its address until the link is used.
    expect((await db().selectFrom('users').select('email').where('id', '=', user.id).executeTakeFirstOrThrow()).email).toBe(user.email);
    const elsewhere = new AddressedBrowser();
    const confirm = await elsewhere.request(link);
    expect(confirm.status).toBe(200);
    const fields = { _csrf: hiddenField(confirm.body, '_csrf'), token: hiddenField(confirm.body, 'token') };
    const changed = await elsewhere.request(`${idp.issuer}/account/email/confirm`, { form: fields });
    expect(changed.status).toBe(200);
    expect(changed.body).toContain('Your email address is changed');
    expect((await elsewhere.request(`${idp.issuer}/account/email/confirm`, { form: fields })).status).toBe(400);

    const notice = await mail.waitFor(user.email);
    expect(notice.text).toContain('Your JobSwipe email address was changed');
    expect(notice.text).toContain(newAddress);
    const row = await db().selectFrom('users').select(['email', 'email_verified']).where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row).toEqual({ email: newAddress, email_verified: true });
    const open = await db().selectFrom('account_tokens').select('token_hash').where('user_id', '=', user.id).where('used_at', 'is', null).execute();
    expect(open).toEqual([]);
    expect(await createAccountTokens(db()).redeem(verifyOld, 'verify_email')).toEqual({ rejected: 'used' });
    expect((await browser.request(`${idp.issuer}/account`)).body).toContain('Verified');

    expect((await signedIn(user)).status).toBe(401);
    const moved = await signedIn({ email: newAddress, password: user.password });
    expect(moved.status).toBe(303);
    expect(moved.tokens!.claims()).toMatchObject({ email: newAddress, email_verified: true });
    expect(await eventsOf(user.id, 'account.email')).toEqual([
      'account.email_change_requested:failure',
      'account.email_change_requested:success',
      'account.email_changed:success',
      'account.email_change_rejected:failure',
    ]);
  });

  it('change email to a taken address: the same answer, its owner is mailed, nothing changes; taken meanwhile is refused', async () => {
    const user = await newUser();
    const owner = await newUser();
    const { browser } = await signedIn(user);
    const csrf = hiddenField((await browser.request(`${idp.issuer}/account/email`)).body, '_csrf');
    const ownerMails = mail.count(owner.email);
    const taken = await browser.request(`${idp.issuer}/account/email`, { form: { _csrf: csrf, email: owner.email.toUpperCase(), current_password: user.password } });
    expect(taken.status).toBe(303);
    expect(taken.location).toBe(`${idp.issuer}/account?notice=email-change-sent`);
    const told = await mail.waitFor(owner.email, ownerMails);
    expect(told.text).toContain('already belongs to your account');
    expect(told.text).not.toContain('/account/email/confirm');

    const later = `later${users}.${setup}@example.com`;
    await browser.request(`${idp.issuer}/account/email`, { form: { _csrf: csrf, email: later, current_password: user.password } });
    const link = linkIn(await mail.waitFor(later), '/account/email/confirm?token=');
    await idp.createUser({ email: later, password: 'someone else took it', name: 'Other' });
    const confirm = await browser.request(link);
    const refused = await browser.request(`${idp.issuer}/account/email/confirm`, { form: { _csrf: hiddenField(confirm.body, '_csrf'), token: hiddenField(confirm.body, 'token') } });
    expect(refused.status).toBe(409);
    expect(refused.body).toContain('belongs to another JobSwipe account');
    expect((await db().selectFrom('users').select('email').where('id', '=', user.id).executeTakeFirstOrThrow()).email).toBe(user.email);
  });

  it('limits email change requests to 5 an hour per user (each one mails an address the user chose)', async () => {
    const user = await newUser();
    const { browser } = await signedIn(user);
    const csrf = hiddenField((await browser.request(`${idp.issuer}/account/email`)).body, '_csrf');
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 6; attempt += 1) {
      const form = { _csrf: csrf, email: `spam${attempt}.${users}.${setup}@example.com`, current_password: user.password };
      statuses.push((await browser.request(`${idp.issuer}/account/email`, { form })).status);
    }
    expect(statuses).toEqual([303, 303, 303, 303, 303, 429]);
    await mail.waitFor(`spam4.${users}.${setup}@example.com`);
    expect(mail.count(`spam5.${users}.${setup}@example.com`)).toBe(0);
    expect((await eventsOf(user.id, 'account.email_change_requested')).at(-1)).toBe('account.email_change_requested:failure');
  });

  it('mails a notice when the password is changed on /account', async () => {
    const user = await newUser();
    const { browser } = await signedIn(user);
    const csrf = hiddenField((await browser.request(`${idp.issuer}/account/password`)).body, '_csrf');
    const changed = await browser.request(`${idp.issuer}/account/password`, { form: { _csrf: csrf, current_password: user.password, password: 'a changed passphrase' } });
    expect(changed.status).toBe(303);
    const notice = await mail.waitFor(user.email);
    expect(notice.text).toContain('Your JobSwipe password was changed');
    expect(notice.text).toContain(`${idp.issuer}/forgot-password`);
  });

  it('keeps the audit chain whole through all of it, with no addresses in the rows', async () => {
    expect(await verifyChain(db())).toMatchObject({ intact: true });
    const rows = await db()
      .selectFrom('audit_events')
      .select(['event_type', 'details'])
      .where((eb) => eb.or([eb('event_type', 'like', 'password.%'), eb('event_type', 'like', 'account.email%')]))
      .execute();
    expect(JSON.stringify(rows)).not.toContain('@example.com');
  });
});
