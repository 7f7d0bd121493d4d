import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { withUser } from '@jobswipe/adapters';
import { decodeJwt } from 'jose';
import { sql } from 'kysely';
import * as oidc from 'openid-client';
import type { Browser as Chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import { runToExit } from '../../../test/support/processes.ts';
import { authorizationRequest, exchangeCode, oauthError, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { SERVER_SETUPS, startTestServer, type ServerSetup } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';
import { createAccountTokens } from '../../src/users/account-tokens.ts';
import { linkIn, mailCatcher } from './mail-catcher.ts';

const PASSWORD = 'a long and unusual passphrase';
const existing = { email: 'taken@example.com', password: 'the owner password 42', name: 'Owner' };

/** A relying party's callback that just answers, so the browser can stop there. */
async function callbackServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

let ips = 0;
/** Each sign-up from its own address (TRUST_PROXY=loopback), so the per-IP limit stays out of the way. */
const nextIp = () => `198.51.100.${(ips += 1)}`;

async function setup(env: Record<string, string> = {}, kind: ServerSetup = 'postgres') {
  const mail = await mailCatcher();
  const callback = await callbackServer();
  const idp = await startTestServer(kind, { SMTP_URL: mail.url, TRUST_PROXY: 'loopback', ...env });
  await idp.createUser(existing);
  const client = await idp.registerClient({ client_id: 'rp', redirect_uris: [callback.url], first_party: true });
  const rp = await relyingParty(idp.issuer, client);
  return {
    idp,
    rp,
    mail,
    callback,
    async stop() {
      await idp.stop();
      await mail.close();
      await callback.close();
    },
  };
}

/** Opens the sign-up page of a new authorization request in a fresh user agent. */
async function signupPage(rp: RelyingParty, issuer: string, browser = new Browser()) {
  const request = await authorizationRequest(rp, 'openid email profile');
  const login = await browser.follow(request.url);
  const uid = /\/interaction\/([^/"]+)\/login/.exec(login.body)?.[1];
  const page = await browser.request(`${issuer}/interaction/${uid}/signup`);
  return { browser, request, login, page, uid };
}

async function submitSignup(rp: RelyingParty, issuer: string, form: { email: string; name?: string; password?: string }, ip = nextIp()) {
  const { browser, page, request, uid } = await signupPage(rp, issuer);
  const started = performance.now();
  const response = await browser.request(formAction(page.body, issuer), {
    form: { _csrf: hiddenField(page.body, '_csrf'), email: form.email, name: form.name ?? 'New User', password: form.password ?? PASSWORD },
    headers: { 'x-forwarded-for': ip },
  });
  return { browser, response, ms: performance.now() - started, request, uid };
}

describe.each(SERVER_SETUPS)('sign-up and email verification (%s)', { timeout: 60_000 }, (kind) => {
  let env: Awaited<ReturnType<typeof setup>>;
  let chromium: Promise<Chromium>;

  beforeAll(async () => {
    env = await setup({}, kind);
    chromium = launchChromium();
    chromium.catch(() => {});
  });
  afterAll(async () => {
    // Undefined when the setup failed before the browser was started.
    await (await chromium?.catch(() => undefined))?.close();
    await env?.stop();
  });

  it('in Chromium: Create account -> Check your email -> Continue -> sign in unverified; the mailed link and the password verify; email_verified turns true', async () => {
    const { idp, rp, mail, callback } = env;
    const context = await (await chromium).newContext();
    const page = await context.newPage();
    const errors = watchProviderErrors(page, idp.issuer);
    const email = 'chromium.user@example.com';

    const first = await authorizationRequest(rp, 'openid email profile');
    await page.goto(first.url);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
    await page.getByRole('link', { name: 'Create account' }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Create your JobSwipe account');
    await page.fill('#email', email);
    await page.fill('#name', 'Chromium User');
    await page.fill('#password', PASSWORD);
    await page.getByRole('button', { name: 'Create account' }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Check your email');
    await page.getByRole('button', { name: 'Continue' }).click();
    // Back to sign-in (as for an address that already had an account); UNVERIFIED_SIGN_IN lets it in.
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
    await page.fill('#email', email);
    await page.fill('#password', PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL((url) => url.href.startsWith(callback.url));
    const before = await exchangeCode(rp, first, page.url());
    expect(before.claims()).toMatchObject({ email, email_verified: false, name: 'Chromium User' });

    const link = linkIn(await mail.waitFor(email), '/verify-email?token=');
    await page.goto(link);
    await page.fill('#password', PASSWORD);
    await page.getByRole('button', { name: 'Verify with my password' }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Your email address is verified');

    // Still signed in at the provider: a new request comes straight back, now verified.
    const second = await authorizationRequest(rp, 'openid email profile');
    await page.goto(second.url);
    await page.waitForURL((url) => url.href.startsWith(callback.url));
    const after = await exchangeCode(rp, second, page.url());
    expect(decodeJwt(after.id_token!)).toMatchObject({ email, email_verified: true });
    expect(errors).toEqual([]);
    await context.close();
  });

  it('in Chromium: an account someone else created with your address is not verified with their password; "Set a new password instead" shuts them out', async () => {
    const { idp, rp, mail } = env;
    const victim = 'victim@example.com';
    const attacker = { email: victim, password: 'the attacker chose this one' };
    const ownPassword = 'the real owner picks this';
    // The attacker signs up with the victim's address, signs in unverified and keeps a refresh token.
    const signup = await submitSignup(rp, idp.issuer, attacker);
    expect(signup.response.status).toBe(200);
    const held = await authorizationRequest(rp, 'openid email offline_access');
    const attackerTokens = await exchangeCode(rp, held, (await signIn(signup.browser, idp.issuer, held, rp.redirectUri, attacker)).location!);
    expect(attackerTokens.refresh_token).toEqual(expect.any(String));
    const verified = async () => (await idp.server.database.db.selectFrom('users').select('email_verified').where('email', '=', victim).executeTakeFirstOrThrow()).email_verified;

    // The mailbox owner opens the link. The link alone (the one-click form of before) verifies nothing.
    const link = linkIn(await mail.waitFor(victim), '/verify-email?token=');
    const probe = new Browser();
    const linkPage = await probe.request(link);
    const oneClick = await probe.request(`${idp.issuer}/verify-email`, { form: { _csrf: hiddenField(linkPage.body, '_csrf'), token: hiddenField(linkPage.body, 'token') } });
    expect(oneClick.status).toBe(400);
    expect(await verified()).toBe(false);

    const context = await (await chromium).newContext();
    const page = await context.newPage();
    const errors = watchProviderErrors(page, idp.issuer);
    await page.goto(link);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Verify your email address');
    expect(await page.getByRole('button', { name: 'Verify my email address' }).count()).toBe(0);
    // A guess is refused like a wrong sign-in, and verifies nothing.
    await page.fill('#password', 'not the password at all');
    await page.getByRole('button', { name: 'Verify with my password' }).click();
    expect(await page.getByRole('alert').innerText()).toContain('That is not your current password');
    expect(await verified()).toBe(false);
    await page.getByRole('button', { name: 'Set a new password instead' }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Choose a new password');
    await page.fill('#password', ownPassword);
    await page.getByRole('button', { name: 'Set new password' }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Your password is changed');
    // The guess above, and nothing else.
    expect(errors).toEqual(['401 POST /verify-email']);
    await context.close();

    // Verified, under the owner's password only: the attacker's no longer signs in, their session and refresh token are dead.
    expect(await verified()).toBe(true);
    const refused = await signIn(new Browser(), idp.issuer, await authorizationRequest(rp, 'openid'), rp.redirectUri, attacker);
    expect(refused.status).toBe(401);
    const attackerSession = await signup.browser.follow((await authorizationRequest(rp, 'openid')).url, (url) => url.startsWith(rp.redirectUri));
    expect(attackerSession.status).toBe(200);
    expect(attackerSession.body).toContain('name="password"');
    expect(await oauthError(oidc.refreshTokenGrant(rp.config, attackerTokens.refresh_token!))).toBe('invalid_grant');
    const owner = await authorizationRequest(rp, 'openid email');
    const ownerTokens = await exchangeCode(rp, owner, (await signIn(new Browser(), idp.issuer, owner, rp.redirectUri, { email: victim, password: ownPassword })).location!);
    expect(ownerTokens.claims()).toMatchObject({ email: victim, email_verified: true });
  });

  it('a verification link works once, and not after it expired', async () => {
    const { idp, rp, mail } = env;
    const email = 'once@example.com';
    await submitSignup(rp, idp.issuer, { email });
    const link = linkIn(await mail.waitFor(email), '/verify-email?token=');
    const browser = new Browser();
    const confirm = await browser.request(link);
    expect(confirm.status).toBe(200);
    const form = { _csrf: hiddenField(confirm.body, '_csrf'), token: hiddenField(confirm.body, 'token'), password: PASSWORD };
    const verified = await browser.request(`${idp.issuer}/verify-email`, { form });
    expect(verified.status).toBe(200);
    const reused = await browser.request(`${idp.issuer}/verify-email`, { form });
    expect(reused.status).toBe(400);
    expect(reused.body).toContain('already used');
    expect((await browser.request(link)).status).toBe(400);

    const late = 'late@example.com';
    const signup = await submitSignup(rp, idp.issuer, { email: late });
    const lateLink = linkIn(await mail.waitFor(late), '/verify-email?token=');
    const lateConfirm = await browser.request(lateLink);
    expect(lateConfirm.status).toBe(200);
    const { db } = idp.server.database;
    const user = await db.selectFrom('users').select(['id']).where('email', '=', late).executeTakeFirstOrThrow();
    await db.updateTable('account_tokens').set({ expires_at: sql<Date>`now() - interval '1 minute'` }).where('user_id', '=', user.id).execute();
    const expired = await browser.request(`${idp.issuer}/verify-email`, {
      form: { _csrf: hiddenField(lateConfirm.body, '_csrf'), token: hiddenField(lateConfirm.body, 'token'), password: PASSWORD },
    });
    expect(expired.status).toBe(400);
    expect(expired.body).toContain('expired');
    // "Send me a new link" mails one only to the unverified account signed in in that browser.
    const resendForm = { _csrf: hiddenField(expired.body, '_csrf') };
    const anonymous = await browser.request(formAction(expired.body, idp.issuer), { form: resendForm });
    expect(anonymous.body).toContain('Nothing to send');
    const signedIn = signup.browser;
    await signIn(signedIn, idp.issuer, await authorizationRequest(rp, 'openid'), rp.redirectUri, { email: late, password: PASSWORD });
    const expiredAgain = await signedIn.request(lateLink);
    const resent = await signedIn.request(formAction(expiredAgain.body, idp.issuer), { form: { _csrf: hiddenField(expiredAgain.body, '_csrf') } });
    expect(resent.status).toBe(200);
    expect(resent.body).toContain('We sent a new verification link');
    expect(linkIn(await mail.waitFor(late, 1), '/verify-email?token=')).not.toBe(lateLink);
    const row = await db.selectFrom('users').select(['email_verified']).where('id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.email_verified).toBe(false);
    // Only hashes are stored.
    const stored = await db.selectFrom('account_tokens').select(['token_hash']).where('user_id', '=', user.id).execute();
    expect(stored.map((token) => token.token_hash)).not.toContain(new URL(lateLink).searchParams.get('token'));
    // The user role (row-level security path) has no right to the table at all.
    await expect(withUser(db, user.id, (trx) => trx.selectFrom('account_tokens').select('token_hash').execute())).rejects.toThrow(/permission denied/);
    // A day after expiry the sweeper removes them.
    await db.updateTable('account_tokens').set({ expires_at: sql<Date>`now() - interval '25 hours'` }).where('user_id', '=', user.id).execute();
    expect(await createAccountTokens(db).sweep()).toBeGreaterThanOrEqual(1);
    expect(await db.selectFrom('account_tokens').select('token_hash').where('user_id', '=', user.id).execute()).toEqual([]);
  });

  it('answers an existing address exactly like a new one (status, text, time) and mails the owner instead', async () => {
    const { idp, rp, mail } = env;
    const normalise = (body: string) => body.replace(/name="_csrf" value="[^"]*"/g, '').replace(/\/interaction\/[^/"]+\//g, '/interaction/UID/');
    const ownerMails = mail.count(existing.email);
    const runs: Array<{ kind: string; status: number; body: string; ms: number }> = [];
    for (let round = 0; round < 3; round += 1) {
      for (const kind of ['existing', 'new'] as const) {
        const email = kind === 'existing' ? existing.email : `fresh${round}@example.com`;
        const { response, ms } = await submitSignup(rp, idp.issuer, { email });
        runs.push({ kind, status: response.status, body: normalise(response.body), ms });
      }
    }
    const existingRuns = runs.filter((run) => run.kind === 'existing');
    const newRuns = runs.filter((run) => run.kind === 'new');
    expect(new Set(runs.map((run) => run.status))).toEqual(new Set([200]));
    expect(new Set(runs.map((run) => run.body)).size).toBe(1);
    expect(runs[0]!.body).toContain('Check your email');
    const median = (values: number[]) => values.sort((a, b) => a - b)[1]!;
    const [a, b] = [median(existingRuns.map((run) => run.ms)), median(newRuns.map((run) => run.ms))];
    expect(Math.max(a, b) / Math.min(a, b)).toBeLessThan(2);

    const notice = await mail.waitFor(existing.email, ownerMails);
    expect(notice.text).toContain('you already have one');
    expect(notice.text).not.toContain('/verify-email');
    // The existing account is untouched: its own password still signs in, the sign-up one does not.
    const owner = await idp.server.database.db.selectFrom('users').selectAll().where('email', '=', existing.email).executeTakeFirstOrThrow();
    expect(owner.name).toBe(existing.name);
  });

  it("Continue answers an existing address exactly like a new one: back to sign-in, same status, Location, page and cookies", async () => {
    const { idp, rp } = env;
    const uidless = (text: string, uid: string) => text.replaceAll(uid, 'UID').replace(/name="_csrf" value="[^"]*"/g, '');
    /** Everything the browser sees of the sign-up answer and of its Continue. */
    const answers = async (email: string) => {
      const { browser, response, uid } = await submitSignup(rp, idp.issuer, { email });
      const next = await browser.request(formAction(response.body, idp.issuer), { form: { _csrf: hiddenField(response.body, '_csrf') } });
      const shape = (answer: typeof response) => ({
        status: answer.status,
        location: answer.location ? uidless(new URL(answer.location).pathname, uid!) : undefined,
        body: uidless(answer.body, uid!),
        cookies: answer.headers.getSetCookie().map((cookie) => cookie.split('=')[0]).sort(),
      });
      const forged = await browser.request(formAction(response.body, idp.issuer), { form: { _csrf: 'forged' } });
      return { signup: shape(response), next: shape(next), forged: forged.status };
    };
    const taken = await answers(existing.email);
    const fresh = await answers('continues@example.com');
    expect(fresh).toEqual(taken);
    expect(fresh.next).toMatchObject({ status: 303, location: '/interaction/UID' });
    expect(fresh.forged).toBe(403);
  });

  it('applies the password rules and refuses a form without a valid CSRF token', async () => {
    const { idp, rp } = env;
    for (const [password, message] of [
      ['short', 'at least 10 characters'],
      ['password123', 'too common'],
      ['é'.repeat(37), 'at most 72 bytes'],
    ] as const) {
      const { response } = await submitSignup(rp, idp.issuer, { email: 'rules@example.com', password });
      expect(response.status).toBe(400);
      expect(response.body).toContain(message);
    }
    const { browser, page } = await signupPage(rp, idp.issuer);
    const forged = await browser.request(formAction(page.body, idp.issuer), { form: { _csrf: 'nope', email: 'csrf@example.com', name: '', password: PASSWORD } });
    expect(forged.status).toBe(403);
    expect(await idp.server.database.db.selectFrom('users').select('id').where('email', 'in', ['rules@example.com', 'csrf@example.com']).execute()).toEqual([]);
  });

  it('answers malformed sign-up and verification requests with 4xx pages, never a 5xx', async () => {
    const { idp, rp } = env;
    const { browser, page, uid } = await signupPage(rp, idp.issuer);
    const csrf = hiddenField(page.body, '_csrf');
    const url = `${idp.issuer}/interaction/${uid}/signup`;
    // With the interaction's and the CSRF cookies, so each request gets past them to its own fault.
    const cookie = await browser.jar.getCookieString(url);
    const raw = (body: string, contentType = 'application/x-www-form-urlencoded') =>
      fetch(url, { method: 'POST', body, headers: { 'content-type': contentType, cookie, 'x-forwarded-for': nextIp() } });
    const statuses: number[] = [];
    for (const body of [
      `_csrf=${csrf}&_csrf=${csrf}&email=a@example.com&password=${PASSWORD}`,
      `_csrf=${csrf}&email=a%00b@example.com&name=x&password=${encodeURIComponent(PASSWORD)}`,
      `_csrf=${csrf}&email=${'a'.repeat(2000)}@example.com&password=x`,
      `_csrf=${csrf}&email[x]=1&password=x`,
      'not a form at all %%%',
    ]) {
      statuses.push((await raw(body)).status);
    }
    statuses.push((await raw('{"email":"a@example.com"}', 'application/json')).status);
    statuses.push((await fetch(`${idp.issuer}/interaction/no-such-uid/signup`)).status);
    statuses.push((await fetch(`${idp.issuer}/verify-email?token=${'%00'.repeat(50)}`)).status);
    statuses.push((await fetch(`${idp.issuer}/verify-email`, { method: 'POST', body: 'token=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status);
    statuses.push((await fetch(`${idp.issuer}/verify-email/resend`, { method: 'POST', body: '_csrf=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } })).status);
    for (const status of statuses) expect(status, statuses.join(' ')).toBeGreaterThanOrEqual(400);
    for (const status of statuses) expect(status, statuses.join(' ')).toBeLessThan(500);
  });

  it('resends the verification mail from the Check your email page, with a limit per IP', async () => {
    const { idp, rp, mail } = env;
    const email = 'resend@example.com';
    const { browser, response } = await submitSignup(rp, idp.issuer, { email });
    await mail.waitFor(email);
    const resendAction = new URL(/action="([^"]+\/resend)"/.exec(response.body)![1]!, idp.issuer).toString();
    const csrf = hiddenField(response.body, '_csrf');
    const ip = nextIp();
    const again = await browser.request(resendAction, { form: { _csrf: csrf }, headers: { 'x-forwarded-for': ip } });
    expect(again.status).toBe(200);
    const second = await mail.waitFor(email, 1);
    linkIn(second, '/verify-email?token=');
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 5; attempt += 1) statuses.push((await browser.request(resendAction, { form: { _csrf: csrf }, headers: { 'x-forwarded-for': ip } })).status);
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses[4]).toBe(429);
  });

  it('limits sign-ups per IP', async () => {
    const { idp, rp } = env;
    const ip = nextIp();
    const statuses: number[] = [];
    // Invalid forms are cheap and count too.
    for (let attempt = 0; attempt < 11; attempt += 1) {
      statuses.push((await submitSignup(rp, idp.issuer, { email: 'limit@example.com', password: 'short' }, ip)).response.status);
    }
    expect(statuses.slice(0, 10).every((status) => status === 400)).toBe(true);
    expect(statuses[10]).toBe(429);
  });

  it('records sign-up and verification in the audit log, without addresses', async () => {
    const rows = await env.idp.server.database.db.selectFrom('audit_events').selectAll().where('event_type', 'like', 'signup.%').execute();
    const types = new Set(rows.map((row) => row.event_type));
    expect(types).toEqual(new Set(['signup.completed', 'signup.existing_address', 'signup.rate_limited']));
    const verification = await env.idp.server.database.db.selectFrom('audit_events').select('event_type').where('event_type', 'like', 'email.%').execute();
    expect(new Set(verification.map((row) => row.event_type))).toEqual(new Set(['email.verification_sent', 'email.verified', 'email.verification_rejected']));
    expect(JSON.stringify(rows)).not.toContain('@example.com');
  });
});

describe('SIGNUP=closed (postgres)', { timeout: 60_000 }, () => {
  let env: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    env = await setup({ SIGNUP: 'closed' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('hides the link and refuses the page and the form', async () => {
    const { login, page, browser, uid } = await signupPage(env.rp, env.idp.issuer);
    expect(login.body).toContain('name="password"');
    expect(login.body).not.toContain('Create account');
    expect(page.status).toBe(404);
    const posted = await browser.request(`${env.idp.issuer}/interaction/${uid}/signup`, {
      form: { _csrf: hiddenField(login.body, '_csrf'), email: 'closed@example.com', name: '', password: PASSWORD },
    });
    expect(posted.status).toBe(404);
  });
});

describe('SIGNUP=invite with UNVERIFIED_SIGN_IN=false (postgres)', { timeout: 90_000 }, () => {
  let env: Awaited<ReturnType<typeof setup>>;
  beforeAll(async () => {
    env = await setup({ SIGNUP: 'invite', UNVERIFIED_SIGN_IN: 'false' });
  });
  afterAll(async () => {
    await env?.stop();
  });

  it('signs up only with an invitation from `idp users invite`; the unverified account signs in after verifying', async () => {
    const { idp, rp, mail, callback } = env;
    const invitee = 'invitee@example.com';
    const { login, page } = await signupPage(rp, idp.issuer);
    expect(login.body).not.toContain('Create account');
    expect(page.status).toBe(403);

    const cli = await runToExit('idp/src/cli/main.ts', ['users', 'invite', '--email', invitee], { ...storeEnvironment(idp.store), ISSUER: idp.issuer, SIGNUP: 'invite' }, 45_000);
    expect(cli.code, cli.stderr).toBe(0);
    const invitation = cli.out.at(-1)!;
    expect(invitation).toMatch(new RegExp(`^${idp.issuer}/invitation\\?token=[A-Za-z0-9_-]{43}$`));

    const browser = new Browser();
    expect((await browser.request(invitation)).status).toBe(200);
    const request = await authorizationRequest(rp, 'openid email');
    const withLink = await browser.follow(request.url);
    expect(withLink.body).toContain('Create account');
    const uid = /\/interaction\/([^/"]+)\/login/.exec(withLink.body)![1]!;
    const form = await browser.request(`${idp.issuer}/interaction/${uid}/signup`);
    expect(form.status).toBe(200);
    expect(form.body).toContain(`value="${invitee}"`);
    const other = await browser.request(formAction(form.body, idp.issuer), {
      form: { _csrf: hiddenField(form.body, '_csrf'), email: 'someone.else@example.com', name: '', password: PASSWORD },
      headers: { 'x-forwarded-for': nextIp() },
    });
    expect(other.status).toBe(400);
    const created = await browser.request(formAction(form.body, idp.issuer), {
      form: { _csrf: hiddenField(form.body, '_csrf'), email: invitee, name: 'Invited', password: PASSWORD },
      headers: { 'x-forwarded-for': nextIp() },
    });
    expect(created.status).toBe(200);
    expect(created.body).toContain('Check your email');
    // UNVERIFIED_SIGN_IN=false: Continue leads back to sign-in, and signing in waits for verification.
    const back = await browser.request(formAction(created.body, idp.issuer), { form: { _csrf: hiddenField(created.body, '_csrf') } });
    expect(new URL(back.location!).pathname).toBe(`/interaction/${uid}`);
    const refused = await signIn(browser, idp.issuer, await authorizationRequest(rp, 'openid email'), callback.url, { email: invitee, password: PASSWORD });
    expect(refused.status).toBe(403);
    expect(refused.body).toContain('Verify your email address first');

    // The invitation was spent: a second browser opening it gets nothing.
    expect((await new Browser().request(invitation)).status).toBe(400);

    const link = linkIn(await mail.waitFor(invitee), '/verify-email?token=');
    const confirm = await browser.request(link);
    await browser.request(`${idp.issuer}/verify-email`, { form: { _csrf: hiddenField(confirm.body, '_csrf'), token: hiddenField(confirm.body, 'token'), password: PASSWORD } });
    const second = await authorizationRequest(rp, 'openid email');
    const done = await signIn(browser, idp.issuer, second, callback.url, { email: invitee, password: PASSWORD });
    expect(done.status).toBe(303);
    const tokens = await exchangeCode(rp, second, done.location!);
    expect(tokens.claims()).toMatchObject({ email: invitee, email_verified: true });
  });
});
