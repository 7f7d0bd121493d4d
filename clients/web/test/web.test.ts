import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { decode } from 'next-auth/jwt';
import { generate } from 'otplib';
import pg from 'pg';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import { freePort, ROOT, type Running } from '../../../test/support/processes.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { startGoogleLike, type RunningUpstream } from '../../../test/support/upstreams.ts';
import { buildWebApp, spawnWebApp, waitUntilServing } from './web-app.ts';

/**
 * The web app end to end: `next build` once, `next start` against the real provider, driven by
 * headless Chromium. The provider's access tokens last 15 minutes; WEB_REFRESH_SKEW_SECONDS makes
 * the app treat them as due for refresh FRESH_SECONDS after they were issued.
 */

const ACCESS_TOKEN_SECONDS = 15 * 60;
const FRESH_SECONDS = 5;
const CLIENT_ID = 'jobswipe-web';
const CLIENT_SECRET = randomBytes(24).toString('base64url');
const NEXTAUTH_SECRET = randomBytes(32).toString('base64url');
const SESSION_COOKIE = 'next-auth.session-token';
// The README's screenshots, rewritten with UPDATE_SCREENSHOTS=1; otherwise taken into a scratch folder
// (every run still renders them), so a test run leaves the working tree as it was.
const SCREENSHOTS = process.env['UPDATE_SCREENSHOTS'] === '1' ? join(ROOT, 'docs/screenshots') : join(tmpdir(), 'jobswipe-web-screenshots');
const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';

let idp: TestServer;
/** A Google-like upstream (a bare oidc-provider), for the landing page's Continue with Google. */
let google: RunningUpstream;
const GOOGLE_ACCOUNT = { sub: '104729000000000000042', email: 'grace@gmail.example', emailVerified: true, name: 'Grace Hopper' };
let web: Running;
let webBase: string;
let chromium: Browser;
const contexts: BrowserContext[] = [];
let userCount = 0;

/** A fresh user per test, so the audit rows a test counts are its own. */
async function newUser(): Promise<{ id: string; email: string; password: string; name: string }> {
  userCount += 1;
  const user = { email: `user${userCount}@example.com`, password: 'correct horse battery staple', name: `Test User ${userCount}` };
  return { ...user, ...(await idp.createUser(user)) };
}

async function newPage(): Promise<{ context: BrowserContext; page: Page }> {
  const context = await chromium.newContext();
  context.setDefaultTimeout(15_000);
  contexts.push(context);
  return { context, page: await context.newPage() };
}

/** The audit events the provider recorded for a user, oldest first. */
async function auditEvents(userId: string): Promise<string[]> {
  if (idp.store.kind !== 'postgres') throw new Error('expected a Postgres store');
  const client = new pg.Client({ connectionString: idp.store.url });
  await client.connect();
  try {
    const result = await client.query<{ event_type: string }>('select event_type from audit_events where user_id = $1 order by id', [userId]);
    return result.rows.map((row) => row.event_type);
  } finally {
    await client.end();
  }
}

/** How many grants (authorizations of apps) the provider holds for a user. */
async function grantsOf(userId: string): Promise<number> {
  if (idp.store.kind !== 'postgres') throw new Error('expected a Postgres store');
  const client = new pg.Client({ connectionString: idp.store.url });
  await client.connect();
  try {
    const result = await client.query<{ count: string }>("select count(*) from oidc_models where model = 'Grant' and account_id = $1", [userId]);
    return Number(result.rows[0]?.count);
  } finally {
    await client.end();
  }
}

const count = (events: string[], type: string) => events.filter((event) => event === type).length;

/** From the landing page's "Sign in", through the provider's login page, to the dashboard. */
async function signIn(page: Page, user: { email: string; password: string }, screenshots = false): Promise<void> {
  await page.goto(`${webBase}/`);
  if (screenshots) await page.screenshot({ path: join(SCREENSHOTS, 'web-landing.png') });
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  // One click: straight to the provider's login page, no NextAuth page in between.
  await page.waitForURL((url) => url.origin === idp.issuer && url.pathname.startsWith('/interaction/'));
  expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  if (screenshots) await page.screenshot({ path: join(SCREENSHOTS, 'provider-login.png') });
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(`${webBase}/dashboard`);
  expect(await page.locator('#email').innerText()).toBe(user.email);
}

/** The encrypted session cookie, as the browser holds it. */
async function sessionCookie(context: BrowserContext) {
  return (await context.cookies(webBase)).find((cookie) => cookie.name === SESSION_COOKIE);
}

/** Waits until the access token the app holds is due for refresh. */
const untilStale = () => sleep((FRESH_SECONDS + 1) * 1000);

beforeAll(async () => {
  await mkdir(SCREENSHOTS, { recursive: true });
  const buildStarted = Date.now();
  const built = await buildWebApp();
  console.info(built ? `next build: ${built} ms` : `next build: reused (${Date.now() - buildStarted} ms to check)`);

  idp = await startTestServer('postgres');
  google = await startGoogleLike({ id: 'google', name: 'Google', callbacks: [`${idp.issuer}/upstream/google/callback`], accounts: { grace: GOOGLE_ACCOUNT } });
  await idp.registerUpstream(google.entry);
  const webPort = await freePort();
  webBase = `http://127.0.0.1:${webPort}`;
  await idp.registerClient({
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    client_name: 'JobSwipe',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [`${webBase}/api/auth/callback/jobswipe`],
    post_logout_redirect_uris: [`${webBase}/`],
    backchannel_logout_uri: `${webBase}/api/backchannel-logout`,
    first_party: true,
  });
  web = spawnWebApp({
    IDP_ISSUER: idp.issuer,
    WEB_CLIENT_ID: CLIENT_ID,
    WEB_CLIENT_SECRET: CLIENT_SECRET,
    NEXTAUTH_URL: webBase,
    NEXTAUTH_SECRET,
    PORT: String(webPort),
    WEB_REFRESH_SKEW_SECONDS: String(ACCESS_TOKEN_SECONDS - FRESH_SECONDS),
    WEB_UPSTREAMS: 'google:Google',
  });
  await waitUntilServing(web, webBase);
  chromium = await launchChromium();
}, 300_000);

afterAll(async () => {
  // The app's own warnings and errors, to read when a test failed.
  if (web?.stderr().trim()) console.warn(`web app stderr:\n${web.stderr()}`);
  for (const context of contexts) await context.close();
  await chromium?.close();
  await web?.stop();
  await google?.close();
  await idp?.stop();
});

describe('the web app, built once and started against the real provider, in Chromium', () => {
  it('refuses to start with missing or invalid settings, naming each', async () => {
    const broken = spawnWebApp({ IDP_ISSUER: 'not a url', NEXTAUTH_SECRET: 'short', PORT: String(await freePort()) });
    try {
      const code = await Promise.race([broken.exited, sleep(30_000, 'timeout' as const)]);
      expect(code).toBe(2);
      const stderr = broken.stderr();
      expect(stderr).toContain('jobswipe-web: invalid settings, not starting:');
      expect(stderr).toContain('IDP_ISSUER: must be an http(s) URL');
      expect(stderr).toContain('WEB_CLIENT_SECRET: is required');
      expect(stderr).toContain('NEXTAUTH_SECRET: must be at least 32 characters');
    } finally {
      await broken.stop();
    }
  }, 40_000);

  it('signs in with one click; the dashboard shows the user; the browser never sees a token', async () => {
    const user = await newUser();
    const { context, page } = await newPage();
    const providerErrors = watchProviderErrors(page, idp.issuer);
    await signIn(page, user, true);
    expect(await page.locator('#name').innerText()).toBe(user.name);
    await page.screenshot({ path: join(SCREENSHOTS, 'web-dashboard.png') });

    const cookie = await sessionCookie(context);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Lax', path: '/' });
    // Over plain http (a local trial) the cookie cannot be Secure; https makes it so (settings.ts).
    expect(cookie?.secure).toBe(false);
    expect(await page.evaluate<string>('document.cookie')).not.toContain(SESSION_COOKIE);
    const session = (await page.evaluate<unknown>("fetch('/api/auth/session').then((response) => response.json())")) as Record<string, unknown>;
    expect(session['user']).toStrictEqual({ name: user.name, email: user.email });
    expect(Object.keys(session).sort()).toEqual(['expires', 'user']);

    // The cookie holds the tokens, encrypted.
    const token = await decode({ token: cookie!.value, secret: NEXTAUTH_SECRET });
    expect(token).toMatchObject({ sub: user.id, email: user.email, accessToken: expect.any(String), refreshToken: expect.any(String), sid: expect.any(String) });
    expect(cookie!.value).not.toContain(String(token?.refreshToken));

    await page.getByRole('link', { name: 'Manage sessions' }).click();
    await page.waitForURL(`${idp.issuer}/account`);
    expect(await page.locator('#apps > li[data-client-id="jobswipe-web"]').count()).toBe(1);
    await page.screenshot({ path: join(SCREENSHOTS, 'provider-account.png'), fullPage: true });

    const events = await auditEvents(user.id);
    expect(count(events, 'token.issued')).toBe(1);
    expect(providerErrors).toEqual([]);
  }, 60_000);

  it('"Continue with Google" on the landing page goes straight to the upstream (upstream=google) and signs in', async () => {
    const { page } = await newPage();
    const providerErrors = watchProviderErrors(page, idp.issuer);
    const providerPages: string[] = [];
    page.on('response', (response) => {
      const url = new URL(response.url());
      if (url.origin === idp.issuer && response.status() === 200) providerPages.push(url.pathname);
    });
    await page.goto(`${webBase}/`);
    await page.getByRole('button', { name: 'Continue with Google' }).click();
    await page.waitForURL((url) => url.origin === google.url);
    // No page of the provider's was shown on the way: the authorization request carried upstream=google.
    expect(providerPages).toEqual([]);
    await page.getByLabel('Account').fill('grace');
    await page.getByRole('button', { name: 'Sign in upstream' }).click();
    await page.waitForURL(`${webBase}/dashboard`);
    expect(await page.locator('#email').innerText()).toBe(GOOGLE_ACCOUNT.email);
    expect(await page.locator('#name').innerText()).toBe(GOOGLE_ACCOUNT.name);
    expect(providerErrors).toEqual([]);
  }, 60_000);

  it('Billing needs two factors: a password-only session is asked to verify, sets up an authenticator app at the provider, and comes back with acr mfa', async () => {
    const user = await newUser();
    const { context, page } = await newPage();
    await signIn(page, user);
    expect((await decode({ token: (await sessionCookie(context))!.value, secret: NEXTAUTH_SECRET }))?.['acr']).toBe('urn:jobswipe:acr:pwd');

    await page.getByRole('link', { name: 'Billing' }).click();
    await page.waitForURL(`${webBase}/billing`);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Billing');
    expect(await page.locator('#step-up-required').innerText()).toContain('Billing needs two-factor authentication');
    expect(await page.locator('#payment-method').count()).toBe(0);

    // A new authorization with acr_values: the provider asks the password again (the user has no
    // second factor yet), then sets up the authenticator app within the sign-in.
    const authorization = page.waitForRequest((request) => request.url().startsWith(`${idp.issuer}/auth?`));
    await page.getByRole('button', { name: 'Verify with two-factor authentication' }).click();
    expect(new URL((await authorization).url()).searchParams.get('acr_values')).toBe('urn:jobswipe:acr:mfa');
    await page.waitForURL((url) => url.origin === idp.issuer && url.pathname.startsWith('/interaction/'));
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Set up your authenticator app');
    const secret = (await page.locator('#totp-secret').innerText()).trim();
    await page.locator('input[name="code"]').fill(await generate({ secret }));
    await page.getByRole('button', { name: 'Turn on' }).click();
    expect((await page.locator('#recovery-codes').innerText()).trim().split('\n')).toHaveLength(10);
    await page.getByRole('button', { name: 'Continue' }).click();

    await page.waitForURL(`${webBase}/billing`);
    expect(await page.locator('#billing-verified').innerText()).toBe('You signed in with two-factor authentication.');
    expect(await page.locator('#payment-method').innerText()).toBe('None on file');
    expect((await decode({ token: (await sessionCookie(context))!.value, secret: NEXTAUTH_SECRET }))?.['acr']).toBe('urn:jobswipe:acr:mfa');
  }, 60_000);

  it('asks for entitlements and shows the plan and its limits on the dashboard, as the provider knows it now', async () => {
    const user = await newUser();
    const { page } = await newPage();
    await signIn(page, user);
    expect(await page.locator('#plan').innerText()).toBe('free');
    expect(await page.locator('#limits').innerText()).toBe('20 applications');
    expect(await page.locator('#desktop-devices').innerText()).toBe('1');
    expect(await page.locator('#features').innerText()).toBe('none');

    const administrator = { kind: 'administrator' } as const;
    await idp.server.libraries.plans.save({ id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] }, administrator);
    await idp.server.libraries.plans.setPlan(user.id, 'pro', administrator);
    await page.reload();
    expect(await page.locator('#plan').innerText()).toBe('pro');
    expect(await page.locator('#limits').innerText()).toBe('500 applications');
    expect(await page.locator('#desktop-devices').innerText()).toBe('3');
    expect(await page.locator('#features').innerText()).toBe('auto_apply');
  }, 60_000);

  it('refreshes a stale access token once, for parallel requests and for a late old cookie', async () => {
    const user = await newUser();
    const { context, page } = await newPage();
    await signIn(page, user);
    const firstCookie = (await sessionCookie(context))!.value;
    const first = await decode({ token: firstCookie, secret: NEXTAUTH_SECRET });

    await untilStale();
    // Five requests at once, each carrying the same stale cookie.
    const responses = await Promise.all(Array.from({ length: 5 }, () => context.request.get(`${webBase}/dashboard`, { maxRedirects: 0 })));
    for (const response of responses) {
      expect(response.status()).toBe(200);
      expect(await response.text()).toContain(user.email);
    }
    await expect.poll(async () => count(await auditEvents(user.id), 'token.refreshed'), { timeout: 5_000 }).toBe(1);
    const refreshed = await decode({ token: (await sessionCookie(context))!.value, secret: NEXTAUTH_SECRET });
    expect(refreshed?.refreshToken).not.toBe(first?.refreshToken);
    expect(refreshed?.accessToken).not.toBe(first?.accessToken);

    // A request still carrying the old cookie after the refresh gets the new tokens, and spends nothing.
    const late = await fetch(`${webBase}/dashboard`, { headers: { cookie: `${SESSION_COOKIE}=${firstCookie}` }, redirect: 'manual' });
    expect(late.status).toBe(200);
    expect(await late.text()).toContain(user.email);
    const lateCookie = late.headers.getSetCookie().find((line) => line.startsWith(`${SESSION_COOKIE}=`));
    expect(lateCookie).toBeDefined();
    const lateToken = await decode({ token: lateCookie!.slice(SESSION_COOKIE.length + 1).split(';')[0]!, secret: NEXTAUTH_SECRET });
    expect(lateToken?.refreshToken).toBe(refreshed?.refreshToken);

    // Stale again: the next page load refreshes with the rotated token.
    await untilStale();
    await page.goto(`${webBase}/dashboard`);
    expect(await page.locator('#email').innerText()).toBe(user.email);
    const events = await auditEvents(user.id);
    expect(count(events, 'token.refreshed')).toBe(2);
    expect(count(events, 'token.reuse_detected')).toBe(0);
  }, 60_000);

  it('"Sign out" ends the web session and the provider session', async () => {
    const user = await newUser();
    const { context, page } = await newPage();
    await signIn(page, user);
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    // RP-initiated logout: the provider confirms, then returns to the landing page.
    await page.waitForURL((url) => url.origin === idp.issuer);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign out of JobSwipe?');
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForURL(`${webBase}/`);
    expect(await page.getByRole('button', { name: 'Sign in', exact: true }).isVisible()).toBe(true);
    expect(await sessionCookie(context)).toBeUndefined();

    await page.goto(`${idp.issuer}/account`);
    expect(new URL(page.url()).pathname).toMatch(/^\/interaction\//);
    expect(await page.getByLabel('Password').isVisible()).toBe(true);
    // The refresh token was revoked too (RFC 7009), so the app is no longer connected: no grant is left.
    expect(await auditEvents(user.id)).toContain('token.revoked');
    expect(await grantsOf(user.id)).toBe(0);

    // A protected page now leads to sign-in, not to an error.
    await page.goto(`${webBase}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await page.getByRole('status').innerText()).toBe('Sign in to continue.');
    expect(await page.getByRole('button', { name: 'Sign in', exact: true }).isVisible()).toBe(true);
  }, 60_000);

  it('"Sign out" of the session on the provider\'s /account ends the web session by back-channel logout', async () => {
    const user = await newUser();
    const { context, page } = await newPage();
    await signIn(page, user);
    await page.goto(`${idp.issuer}/account`);
    const deliveries = () =>
      idp.logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line['event'] === 'backchannel_logout' && line['clientId'] === CLIENT_ID);
    const earlier = deliveries().length;
    const thisBrowser = page.locator('#sessions > li', { has: page.locator('.badge', { hasText: 'This browser' }) });
    await thisBrowser.getByRole('button', { name: 'Sign out', exact: true }).click();

    // The provider delivers the logout token in the background, and says when the app accepted it.
    await expect.poll(() => deliveries().length, { timeout: 5_000 }).toBe(earlier + 1);
    expect(deliveries()[earlier]).toMatchObject({ msg: 'logout token delivered', attempts: 1, sid: true });
    // The very next request is signed out.
    await page.goto(`${webBase}/dashboard`);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await page.getByRole('status').innerText()).toContain('You were signed out from your JobSwipe account');
    expect(await sessionCookie(context)).toBeUndefined();
    const events = await auditEvents(user.id);
    // Ended by the logout token, not by a failed refresh.
    expect(count(events, 'token.refreshed')).toBe(0);
    expect(count(events, 'token.reuse_detected')).toBe(0);
  }, 60_000);

  it('the landing page shows only its own notices and error codes, whatever the query string says', async () => {
    for (const query of ['notice=constructor', 'notice=__proto__', 'notice=toString', 'error=%3Cb%3Einjected%3C%2Fb%3E', `error=${'A'.repeat(41)}`]) {
      const response = await fetch(`${webBase}/?${query}`);
      const body = await response.text();
      expect(response.status, query).toBe(200);
      expect(body, query).not.toContain('role="status"');
      expect(body, query).not.toContain('role="alert"');
    }
    const known = await (await fetch(`${webBase}/?notice=access-revoked&error=OAuthCallback`)).text();
    expect(known).toContain('Your session has ended because access was revoked.');
    expect(known).toContain('Signing in did not complete (<!-- -->OAuthCallback<!-- -->)');
  });

  it('answers 400 to logout tokens it must refuse', async () => {
    const post = (body: string, type = 'application/x-www-form-urlencoded') =>
      fetch(`${webBase}/api/backchannel-logout`, { method: 'POST', headers: { 'content-type': type }, body });
    expect((await post('')).status).toBe(400);
    expect((await post('logout_token=not.a.jwt')).status).toBe(400);
    expect((await post('{}', 'application/json')).status).toBe(400);

    // Well-formed claims, signed by a key that is not the provider's.
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const kid = (await exportJWK(publicKey)).n!.slice(0, 8);
    const forged = await new SignJWT({ events: { [BACKCHANNEL_LOGOUT_EVENT]: {} }, sid: 'some-session' })
      .setProtectedHeader({ alg: 'RS256', typ: 'logout+jwt', kid })
      .setIssuer(idp.issuer)
      .setAudience(CLIENT_ID)
      .setSubject('someone')
      .setIssuedAt()
      .setJti(randomBytes(8).toString('hex'))
      .sign(privateKey);
    const response = await post(`logout_token=${forged}`);
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: 'invalid_request' });
  });

  it('a grant revoked elsewhere signs the user out with a message at the next refresh', async () => {
    const user = await newUser();
    const { context, page } = await newPage();
    await signIn(page, user);
    const token = await decode({ token: (await sessionCookie(context))!.value, secret: NEXTAUTH_SECRET });

    // Revoking the refresh token (RFC 7009) kills the grant; no logout token is sent.
    const revocation = await fetch(`${idp.issuer}/token/revocation`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: new URLSearchParams({ token: String(token?.refreshToken), token_type_hint: 'refresh_token' }),
    });
    expect(revocation.status).toBe(200);

    await untilStale();
    const response = await page.goto(`${webBase}/dashboard`);
    expect(response?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe('/');
    expect(await page.getByRole('status').innerText()).toContain('Your session has ended because access was revoked');
    expect(await page.getByRole('button', { name: 'Sign in', exact: true }).isVisible()).toBe(true);
    expect(await sessionCookie(context)).toBeUndefined();
    expect(count(await auditEvents(user.id), 'token.reuse_detected')).toBe(0);
  }, 60_000);
});
