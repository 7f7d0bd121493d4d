import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../../../test/support/chromium.ts';
import { authorizationRequest, exchangeCode, relyingParty, type AuthorizationRequest, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { startGitHubLike, startGoogleLike, type RunningUpstream } from '../../../test/support/upstreams.ts';

/*
 * Social login end to end in headless Chromium, against real upstreams on loopback ports: a bare
 * oidc-provider configured as Google is, and an OAuth 2.0 server shaped like GitHub. A relying party
 * (openid-client) starts each sign-in and redeems the code it gets back.
 */

/** The relying party's callback: a real page on a loopback port (set in beforeAll). */
let RP_CALLBACK = '';
let rpServer: Server;
const SCOPE = 'openid email profile';
const bob = { email: 'bob@work.example', password: 'bob has a long password', name: 'Bob Builder' };

let idp: TestServer;
let closedIdp: TestServer;
let google: RunningUpstream;
let github: RunningUpstream;
let chromium: Browser;
let rp: RelyingParty;
let closedRp: RelyingParty;

const callbackOf = (server: { issuer: string }, id: string) => `${server.issuer}/upstream/${id}/callback`;

async function registerUpstreams(server: TestServer): Promise<void> {
  for (const upstream of [google, github]) await server.registerUpstream(upstream.entry);
}

async function registerRelyingParty(server: TestServer): Promise<RelyingParty> {
  const client = await server.registerClient({ client_id: 'jobs-board', client_name: 'Jobs Board', redirect_uris: [RP_CALLBACK], first_party: true });
  return relyingParty(server.issuer, client);
}

/** Every response of our provider, to check that no step answered a 500. */
function watchResponses(page: Page, issuer: string): Array<{ status: number; path: string }> {
  const seen: Array<{ status: number; path: string }> = [];
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.origin === issuer) seen.push({ status: response.status(), path: url.pathname });
  });
  return seen;
}

/** A fresh browser profile at the relying party's authorization request; the relying party's callback answers a plain page. */
async function startAt(server: TestServer, party: RelyingParty, extra: Record<string, string> = {}, ip?: string) {
  // A browser of its own address (believed from the loopback proxy), for its own sign-in limits.
  const context: BrowserContext = await chromium.newContext(ip ? { extraHTTPHeaders: { 'x-forwarded-for': ip } } : {});
  const page = await context.newPage();
  const responses = watchResponses(page, server.issuer);
  const request = await authorizationRequest(party, SCOPE, extra);
  await page.goto(request.url);
  return { context, page, request, responses };
}

/** The relying party's side: the code it got is redeemed, and the ID token's claims returned. */
async function landedAtRelyingParty(page: Page, party: RelyingParty, request: AuthorizationRequest) {
  await page.waitForURL((url) => url.href.startsWith(RP_CALLBACK));
  const tokens = await exchangeCode(party, request, page.url());
  const claims = tokens.claims();
  if (!claims) throw new Error('no ID token');
  return claims;
}

async function atUpstream(page: Page, upstream: RunningUpstream, account: string, decision: 'Sign in upstream' | 'Cancel upstream' = 'Sign in upstream') {
  await page.waitForURL((url) => url.origin === upstream.url);
  await page.getByLabel('Account').fill(account);
  await page.getByRole('button', { name: decision }).click();
}

async function heading(page: Page): Promise<string> {
  return page.getByRole('heading', { level: 1 }).innerText();
}

async function eventsOf(server: TestServer, type: string) {
  return server.server.database.db.selectFrom('audit_events').selectAll().where('event_type', '=', type).orderBy('id').execute();
}

async function identitiesOf(server: TestServer, userId: string) {
  return server.server.database.db.selectFrom('upstream_identities').selectAll().where('user_id', '=', userId).execute();
}

beforeAll(async () => {
  rpServer = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end('<!doctype html><title>Jobs Board</title><h1 id="rp">relying party</h1>');
  });
  await new Promise<void>((resolve) => rpServer.listen(0, '127.0.0.1', resolve));
  RP_CALLBACK = `http://127.0.0.1:${(rpServer.address() as AddressInfo).port}/callback`;
  // Interactions in Redis for one, the embedded store (PGlite) for the other.
  [idp, closedIdp, chromium] = await Promise.all([startTestServer('postgres+redis', { TRUST_PROXY: 'loopback' }), startTestServer('embedded', { SIGNUP: 'closed' }), launchChromium()]);
  const servers = [idp, closedIdp];
  [google, github] = await Promise.all([
    startGoogleLike({
      id: 'google',
      name: 'Google',
      callbacks: servers.map((server) => callbackOf(server, 'google')),
      accounts: {
        ada: { sub: '104729000000000000001', email: 'ada@gmail.example', emailVerified: true, name: 'Ada Lovelace' },
        grace: { sub: '104729000000000000002', email: 'grace@gmail.example', emailVerified: true, name: 'Grace Hopper' },
      },
    }),
    startGitHubLike({
      id: 'github',
      name: 'GitHub',
      callbacks: servers.map((server) => callbackOf(server, 'github')),
      accounts: {
        bob: {
          id: 583231,
          login: 'bob',
          name: bob.name,
          publicEmail: null,
          emails: [
            { email: 'bob@old.example', primary: false, verified: false },
            { email: bob.email, primary: true, verified: true },
          ],
        },
        carol: { id: 7001, login: 'carol', name: 'Carol', publicEmail: null, emails: [{ email: 'carol@work.example', primary: true, verified: true }] },
        // Ada's address, at GitHub: her account has no password to prove it with.
        ada: { id: 1815, login: 'ada', name: 'Ada L.', publicEmail: 'ada@gmail.example', emails: [{ email: 'ada@gmail.example', primary: true, verified: true }] },
      },
    }),
  ]);
  await Promise.all(servers.map(registerUpstreams));
  [rp, closedRp] = await Promise.all([registerRelyingParty(idp), registerRelyingParty(closedIdp)]);
}, 60_000);

afterAll(async () => {
  await chromium?.close();
  await Promise.all([google?.close(), github?.close()]);
  rpServer?.closeAllConnections();
  rpServer?.close();
  await Promise.all([idp?.stop(), closedIdp?.stop()]);
});

describe('signing in with an upstream', () => {
  let adaSub = '';

  it('first sign-in with Google creates the user and completes the original authorization, amr fed', async () => {
    const { context, page, request, responses } = await startAt(idp, rp);
    expect(await heading(page)).toBe('Sign in');
    await page.getByRole('button', { name: 'Continue with Google' }).click();
    await atUpstream(page, google, 'ada');
    const claims = await landedAtRelyingParty(page, rp, request);
    adaSub = claims.sub;
    expect(claims).toMatchObject({ email: 'ada@gmail.example', email_verified: true, name: 'Ada Lovelace', amr: ['fed'], acr: 'urn:jobswipe:acr:pwd' });
    const user = await idp.server.queries.users.findById(claims.sub);
    expect(user).toMatchObject({ email: 'ada@gmail.example', email_verified: true, name: 'Ada Lovelace', password_hash: null });
    expect(await identitiesOf(idp, claims.sub)).toMatchObject([{ upstream_id: 'google', subject: '104729000000000000001' }]);
    expect((await eventsOf(idp, 'upstream.sign_in')).at(-1)).toMatchObject({ outcome: 'success', user_id: claims.sub, details: { upstream: 'google', created: true } });
    expect(responses.filter((response) => response.status >= 400)).toEqual([]);
    await context.close();
  });

  it('a returning sign-in gets the same sub, found by the upstream subject', async () => {
    const { context, page, request } = await startAt(idp, rp);
    await page.getByRole('button', { name: 'Continue with Google' }).click();
    await atUpstream(page, google, 'ada');
    const claims = await landedAtRelyingParty(page, rp, request);
    expect(claims.sub).toBe(adaSub);
    expect(claims['amr']).toEqual(['fed']);
    expect((await idp.server.queries.users.list()).filter((user) => user.email === 'ada@gmail.example')).toHaveLength(1);
    await context.close();
  });

  it('upstream=<id> skips our login page: the browser goes straight to the upstream', async () => {
    const { context, page, request, responses } = await startAt(idp, rp, { upstream: 'google' });
    expect(new URL(page.url()).origin).toBe(google.url);
    // The authorization endpoint and the interaction redirected; no page of ours was shown.
    expect(responses.every((response) => response.status === 303 || response.status === 302 || response.status === 307)).toBe(true);
    await atUpstream(page, google, 'ada');
    const claims = await landedAtRelyingParty(page, rp, request);
    expect(claims.sub).toBe(adaSub);
    await context.close();
  });

  it('an existing password account is linked only after its password, then GitHub signs it in', async () => {
    const existing = await idp.createUser(bob);
    const { context, page, request } = await startAt(idp, rp);
    await page.getByRole('button', { name: 'Continue with GitHub' }).click();
    await atUpstream(page, github, 'bob');
    await page.waitForURL((url) => url.origin === idp.issuer && url.pathname.endsWith('/upstream'));
    expect(await heading(page)).toBe('An account with this email already exists');
    expect(await identitiesOf(idp, existing.id)).toEqual([]);

    await page.getByLabel('Password').fill('not the password at all');
    const wrong = page.waitForResponse((response) => response.url().endsWith('/upstream/link'));
    await page.getByRole('button', { name: 'Link and continue' }).click();
    expect((await wrong).status()).toBe(401);
    expect(await heading(page)).toBe('An account with this email already exists');
    expect(await identitiesOf(idp, existing.id)).toEqual([]);
    expect((await eventsOf(idp, 'upstream.linked')).at(-1)).toMatchObject({ outcome: 'failure', user_id: existing.id, details: { reason: 'wrong_password' } });

    await page.getByLabel('Password').fill(bob.password);
    await page.getByRole('button', { name: 'Link and continue' }).click();
    const claims = await landedAtRelyingParty(page, rp, request);
    expect(claims.sub).toBe(existing.id);
    expect(claims['amr']).toEqual(['fed', 'pwd']);
    expect(await identitiesOf(idp, existing.id)).toMatchObject([{ upstream_id: 'github', subject: '583231', email: bob.email }]);
    expect((await eventsOf(idp, 'upstream.linked')).at(-1)).toMatchObject({ outcome: 'success', user_id: existing.id, details: { upstream: 'github' } });
    await context.close();

    // Linked now: the next GitHub sign-in asks nothing more.
    const again = await startAt(idp, rp, { upstream: 'github' });
    await atUpstream(again.page, github, 'bob');
    const next = await landedAtRelyingParty(again.page, rp, again.request);
    expect(next.sub).toBe(existing.id);
    expect(next['amr']).toEqual(['fed']);
    await again.context.close();
  });
});

describe('what is not linked or not offered', () => {
  it('the sign-in limits apply to Link and continue: after 5 wrong passwords from an address, 429 and nothing linked', async () => {
    const carol = await idp.createUser({ email: 'carol@work.example', password: 'carol has a long password', name: 'Carol' });
    const { context, page } = await startAt(idp, rp, { upstream: 'github' }, '198.51.100.23');
    await atUpstream(page, github, 'carol');
    await page.waitForURL((url) => url.origin === idp.issuer && url.pathname.endsWith('/upstream'));
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 6; attempt += 1) {
      await page.getByLabel('Password').fill(attempt < 5 ? `wrong password number ${attempt}` : 'carol has a long password');
      const answer = page.waitForResponse((response) => response.url().endsWith('/upstream/link'));
      await page.getByRole('button', { name: 'Link and continue' }).click();
      statuses.push((await answer).status());
    }
    // The right password, once over the limit, is not even checked.
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    expect(await page.getByRole('alert').innerText()).toContain('Try again in');
    expect(await identitiesOf(idp, carol.id)).toEqual([]);
    await context.close();
  });

  it('an address whose account has no password is never linked: the page says the account exists, with no form', async () => {
    const { context, page, responses } = await startAt(idp, rp, { upstream: 'github' });
    await atUpstream(page, github, 'ada');
    await page.waitForURL((url) => url.origin === idp.issuer && url.pathname.endsWith('/upstream'));
    expect(await heading(page)).toBe('An account with this email already exists');
    expect(responses.find((response) => response.path.endsWith('/upstream'))?.status).toBe(409);
    expect(await page.getByLabel('Password').count()).toBe(0);
    const ada = await idp.server.queries.users.findByEmail('ada@gmail.example');
    expect((await identitiesOf(idp, ada!.id)).map((identity) => identity.upstream_id)).toEqual(['google']);
    await context.close();
  });

  it('an unknown upstream=<id> shows our login page', async () => {
    const { context, page } = await startAt(idp, rp, { upstream: 'myspace' });
    expect(new URL(page.url()).origin).toBe(idp.issuer);
    expect(await heading(page)).toBe('Sign in');
    await context.close();
  });
});

describe('an upstream answer that does not check out ends on a clear page', () => {
  /** The problem page: its status, heading, and the way back to our login page. */
  async function expectProblemPage(page: Page, responses: Array<{ status: number; path: string }>, title: RegExp) {
    await page.waitForURL((url) => url.origin === idp.issuer && url.pathname === '/upstream/google/callback');
    expect(await heading(page)).toMatch(title);
    const callback = responses.find((response) => response.path === '/upstream/google/callback');
    expect(callback?.status).toBe(400);
    expect(responses.filter((response) => response.status >= 500)).toEqual([]);
    await page.getByRole('link', { name: 'Back to sign-in' }).click();
    expect(await heading(page)).toBe('Sign in');
    expect(await page.getByRole('button', { name: 'Continue with Google' }).count()).toBe(1);
  }

  it('a forged state', async () => {
    const { context, page, responses } = await startAt(idp, rp, { upstream: 'google' });
    await page.waitForURL((url) => url.origin === google.url);
    // Login CSRF: the browser is sent to our callback with an answer (someone else's code) and a state it never got.
    const forged = new URL(callbackOf(idp, 'google'));
    forged.search = new URLSearchParams({ code: 'an-attackers-code', state: 'forged-state-value', iss: google.url }).toString();
    await page.goto(forged.toString());
    await expectProblemPage(page, responses, /did not finish/);
    expect((await eventsOf(idp, 'upstream.rejected')).at(-1)).toMatchObject({ details: { upstream: 'google', reason: 'state_mismatch' } });
    await context.close();
  });

  it('a wrong nonce in the ID token', async () => {
    const { context, page, responses } = await startAt(idp, rp);
    // The upstream signs an ID token for another nonce than the one we sent and keep.
    google.tamper.nonce = 'a-nonce-we-never-sent';
    await page.getByRole('button', { name: 'Continue with Google' }).click();
    await atUpstream(page, google, 'ada');
    await expectProblemPage(page, responses, /did not finish/);
    expect((await eventsOf(idp, 'upstream.rejected')).at(-1)).toMatchObject({ details: { upstream: 'google', reason: 'invalid_answer' } });
    expect(google.tamper.nonce).toBeUndefined();
    await context.close();
  });

  it('access_denied from the upstream', async () => {
    const { context, page, responses } = await startAt(idp, rp, { upstream: 'google' });
    await atUpstream(page, google, 'ada', 'Cancel upstream');
    await expectProblemPage(page, responses, /was cancelled/);
    expect((await eventsOf(idp, 'upstream.rejected')).at(-1)).toMatchObject({ details: { upstream: 'google', reason: 'upstream_error', error: 'access_denied' } });
    await context.close();
  });
});

describe('sign-in methods on /account', () => {
  it('unlink is refused for the last way in, and allowed when a password remains', async () => {
    // Ada has only Google.
    const ada = await chromium.newContext();
    const page = await ada.newPage();
    await page.goto(`${idp.issuer}/account`);
    await page.getByRole('button', { name: 'Continue with Google' }).click();
    await atUpstream(page, google, 'ada');
    await page.waitForURL(`${idp.issuer}/account`);
    const methods = page.locator('#sign-in-methods');
    expect(await methods.locator('[data-upstream="google"]').innerText()).toContain('Google');
    const refused = page.waitForResponse((response) => response.url().endsWith('/unlink'));
    await methods.locator('[data-upstream="google"]').getByRole('button', { name: 'Unlink' }).click();
    expect((await refused).status()).toBe(409);
    expect(await heading(page)).toBe('This is your only way to sign in');
    const adaUser = await idp.server.queries.users.findByEmail('ada@gmail.example');
    expect(await identitiesOf(idp, adaUser!.id)).toHaveLength(1);
    expect((await eventsOf(idp, 'upstream.unlinked')).at(-1)).toMatchObject({ outcome: 'failure', user_id: adaUser!.id, details: { reason: 'last_way_in' } });
    await ada.close();

    // Bob has a password and GitHub.
    const bobs = await chromium.newContext();
    const bobPage = await bobs.newPage();
    await bobPage.goto(`${idp.issuer}/account`);
    await bobPage.getByLabel('Email').fill(bob.email);
    await bobPage.getByLabel('Password').fill(bob.password);
    await bobPage.getByRole('button', { name: 'Sign in', exact: true }).click();
    await bobPage.waitForURL(`${idp.issuer}/account`);
    await bobPage.locator('#sign-in-methods [data-upstream="github"]').getByRole('button', { name: 'Unlink' }).click();
    await bobPage.waitForURL((url) => url.searchParams.get('notice') === 'upstream-unlinked');
    expect(await bobPage.locator('#sign-in-methods [data-upstream]').count()).toBe(0);
    const bobUser = await idp.server.queries.users.findByEmail(bob.email);
    expect(await identitiesOf(idp, bobUser!.id)).toEqual([]);
    expect((await eventsOf(idp, 'upstream.unlinked')).at(-1)).toMatchObject({ outcome: 'success', user_id: bobUser!.id, details: { upstream: 'github' } });
    await bobs.close();
  });
});

describe('SIGNUP=closed', () => {
  it('a first upstream sign-in creates no user and ends on a clear page', async () => {
    const { context, page, responses } = await startAt(closedIdp, closedRp, { upstream: 'google' });
    await atUpstream(page, google, 'grace');
    await page.waitForURL((url) => url.origin === closedIdp.issuer && url.pathname.endsWith('/upstream'));
    expect(await heading(page)).toBe('No account for this sign-in');
    expect(responses.find((response) => response.path.endsWith('/upstream'))?.status).toBe(403);
    expect(await closedIdp.server.queries.users.findByEmail('grace@gmail.example')).toBeUndefined();
    expect((await eventsOf(closedIdp, 'upstream.rejected')).at(-1)).toMatchObject({ details: { upstream: 'google', reason: 'signup_closed' } });
    await page.getByRole('link', { name: 'Back to sign-in' }).click();
    expect(await heading(page)).toBe('Sign in');
    await context.close();
  });
});
