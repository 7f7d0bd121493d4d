import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import { authorizationRequest, type AuthorizationRequest, exchangeCode, oauthError, relyingParty, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/**
 * End to end in a real browser: headless Chromium signs a user in to two relying parties (real HTTP
 * servers using openid-client) in two browser sessions, then uses /account and RP-initiated logout,
 * while the relying parties check their refresh tokens and the logout tokens they are sent.
 */

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple', name: 'Alice Example' };

type Tokens = Awaited<ReturnType<typeof exchangeCode>>;

/** One completed sign-in at a relying party. */
interface SignIn {
  id: number;
  tokens: Tokens;
  idToken: string;
  sub: string;
  sid: string;
  /** The newest refresh token (they rotate on every use). */
  refreshToken: string;
}

interface BackchannelRequest {
  method: string;
  contentType: string | undefined;
  logoutToken: string | null;
}

/** A relying party web app: sign-in, callback, post-logout page and back-channel logout endpoint. */
interface RelyingPartyApp {
  clientId: string;
  name: string;
  base: string;
  /** Where a user starts signing in to this app. */
  signInUrl: string;
  postLogoutRedirectUri: string;
  rp: RelyingParty;
  signIns: SignIn[];
  backchannel: BackchannelRequest[];
  /** Raw logout tokens received, in order. */
  logoutTokens(): string[];
  /** Anything that went wrong inside the app (a failed code exchange...). */
  failures: string[];
  close(): Promise<void>;
}

function htmlPage(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

/**
 * Starts a relying party on 127.0.0.1 and registers it as a confidential, first-party client.
 * With `backchannel: 'hang'` its back-channel endpoint reads the request and never answers.
 */
async function startRelyingPartyApp(
  idp: TestServer,
  options: { clientId: string; name: string; scope: string; backchannel?: 'answer' | 'hang' },
): Promise<RelyingPartyApp> {
  const pending = new Map<string, AuthorizationRequest>();
  const signIns: SignIn[] = [];
  const backchannel: BackchannelRequest[] = [];
  const failures: string[] = [];
  let rp: RelyingParty | undefined;
  let base = '';

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', base);
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      response.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
      response.end(body);
    };
    if (!rp) throw new Error('relying party not configured yet');

    if (request.method === 'GET' && url.pathname === '/login') {
      const authorization = await authorizationRequest(rp, options.scope);
      pending.set(authorization.state, authorization);
      send(302, '', { location: authorization.url });
      return;
    }

    if (request.method === 'GET' && url.pathname === '/callback') {
      const authorization = pending.get(url.searchParams.get('state') ?? '');
      if (!authorization) {
        failures.push(`callback with unknown state: ${url.search}`);
        send(400, htmlPage(options.name, '<h1 id="status">unknown state</h1>'));
        return;
      }
      pending.delete(authorization.state);
      const tokens = await exchangeCode(rp, authorization, url.toString());
      const claims = tokens.claims();
      if (!claims || typeof claims['sid'] !== 'string' || !tokens.id_token || !tokens.refresh_token) {
        throw new Error(`incomplete token response: ${JSON.stringify(Object.keys(tokens))}`);
      }
      const signIn: SignIn = {
        id: signIns.length,
        tokens,
        idToken: tokens.id_token,
        sub: claims.sub,
        sid: claims['sid'],
        refreshToken: tokens.refresh_token,
      };
      signIns.push(signIn);
      send(200, htmlPage(options.name, `<h1 id="status">signed in</h1><p id="sign-in" data-id="${signIn.id}">Signed in to ${options.name}</p>`));
      return;
    }

    if (request.method === 'GET' && url.pathname === '/signed-out') {
      send(200, htmlPage(options.name, `<h1 id="status">signed out</h1><p>You are signed out of ${options.name}.</p>`));
      return;
    }

    if (url.pathname === '/backchannel-logout') {
      let body = '';
      request.setEncoding('utf8');
      for await (const chunk of request) body += chunk as string;
      backchannel.push({
        method: request.method ?? '',
        contentType: request.headers['content-type'],
        logoutToken: new URLSearchParams(body).get('logout_token'),
      });
      // A relying party that never answers: the connection stays open until the provider gives up.
      if (options.backchannel === 'hang') return;
      response.writeHead(200, { 'cache-control': 'no-store' });
      response.end();
      return;
    }

    send(404, htmlPage(options.name, '<h1>Not found</h1>'));
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      failures.push(`${request.method} ${request.url}: ${String(error)}`);
      if (!response.headersSent) {
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        response.end(`relying party error: ${String(error)}`);
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const client = await idp.registerClient({
    client_id: options.clientId,
    client_name: options.name,
    redirect_uris: [`${base}/callback`],
    post_logout_redirect_uris: [`${base}/signed-out`],
    backchannel_logout_uri: `${base}/backchannel-logout`,
    first_party: true,
    grant_types: ['authorization_code', 'refresh_token'],
  });
  expect(client['client_secret']).toEqual(expect.any(String));
  rp = await relyingParty(idp.issuer, client);
  const configured = rp;

  return {
    clientId: options.clientId,
    name: options.name,
    base,
    signInUrl: `${base}/login`,
    postLogoutRedirectUri: `${base}/signed-out`,
    rp: configured,
    signIns,
    backchannel,
    logoutTokens: () => backchannel.flatMap((request) => (request.logoutToken ? [request.logoutToken] : [])),
    failures,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Uses a sign-in's refresh token (which must work) and keeps the rotated one. */
async function refresh(app: RelyingPartyApp, signIn: SignIn): Promise<void> {
  const refreshed = await oidc.refreshTokenGrant(app.rp.config, signIn.refreshToken);
  expect(refreshed.access_token).toEqual(expect.any(String));
  expect(refreshed.refresh_token).toEqual(expect.any(String));
  signIn.refreshToken = refreshed.refresh_token!;
}

/** Names a failing step in the assertion message. */
async function step(name: string, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (error) {
    if (error instanceof Error) error.message = `[${name}] ${error.message}`;
    throw error;
  }
}

const atUrl = (target: string) => (url: URL) => url.href === target;
const atPath = (origin: string, pathname: string) => (url: URL) => url.origin === origin && url.pathname === pathname;


/** The sign-in an app's callback page reports (after the browser landed there). */
async function landedSignIn(page: Page, app: RelyingPartyApp): Promise<SignIn> {
  expect(app.failures).toEqual([]);
  expect(await page.locator('#status').innerText()).toBe('signed in');
  const id = Number(await page.locator('#sign-in').getAttribute('data-id'));
  const signIn = app.signIns[id];
  if (!signIn) throw new Error(`${app.name} has no sign-in #${id}`);
  return signIn;
}

/** From the app's sign-in link through the provider's login page, back to the app. */
async function signInWithPassword(page: Page, issuer: string, app: RelyingPartyApp, user: { email: string; password: string }): Promise<SignIn> {
  await page.goto(app.signInUrl);
  expect(new URL(page.url()).origin).toBe(issuer);
  expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
  expect(await page.locator('body').innerText()).toContain(`to continue to ${app.name}`);
  await page.getByLabel('Email').fill(user.email);
  await page.getByLabel('Password').fill(user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForURL(atPath(app.base, '/callback'));
  return landedSignIn(page, app);
}

function createLogoutTokenVerifier(issuer: string) {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/jwks`));
  const now = () => Math.floor(Date.now() / 1000);
  /** Verifies a logout token as a relying party must (Back-Channel Logout 1.0, section 2.6). */
  return async function verifyLogoutToken(token: string, clientId: string, sub: string): Promise<JWTPayload> {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      audience: clientId,
      typ: 'logout+jwt',
      algorithms: ['RS256'],
    });
    expect(protectedHeader).toMatchObject({ alg: 'RS256', typ: 'logout+jwt', kid: expect.any(String) });
    expect(payload.aud).toBe(clientId);
    expect(payload.events).toStrictEqual({ [BACKCHANNEL_LOGOUT_EVENT]: {} });
    expect(payload.sub).toBe(sub);
    expect(payload['sid']).toEqual(expect.any(String));
    expect(payload).not.toHaveProperty('nonce');
    expect(payload.jti).toEqual(expect.any(String));
    expect(payload.iat).toEqual(expect.any(Number));
    expect(payload.exp).toEqual(expect.any(Number));
    expect(payload.exp!).toBeGreaterThan(payload.iat!);
    expect(Math.abs(payload.iat! - now())).toBeLessThan(60);
    return payload;
  };
}

/** Waits for the back-channel delivery (sent in the background) of a logout token for `sid`. */
async function logoutTokenFor(app: RelyingPartyApp, sid: string): Promise<string> {
  const find = () => app.logoutTokens().find((token) => decodeJwt(token)['sid'] === sid);
  await expect.poll(() => find() !== undefined, { timeout: 5_000, message: `${app.name} received a logout token for sid ${sid}` }).toBe(true);
  return find()!;
}

let chromium: Promise<Browser> | undefined;

beforeAll(() => {
  // Launched once for the file. A missing Chromium fails each test with launchChromium's message
  // (rather than failing this hook, which would report the tests as skipped).
  chromium = launchChromium();
  chromium.catch(() => {});
});

afterAll(async () => {
  await (await chromium?.catch(() => undefined))?.close();
});

async function newContext(): Promise<BrowserContext> {
  if (!chromium) throw new Error('Chromium was not launched');
  const context = await (await chromium).newContext();
  // Fail a step well before the test's own timeout.
  context.setDefaultTimeout(10_000);
  return context;
}

describe('two relying parties, two browser sessions, in Chromium (postgres+redis)', () => {
  let idp: TestServer;
  let web: RelyingPartyApp;
  let desktop: RelyingPartyApp;
  let contextA: BrowserContext | undefined;
  let contextB: BrowserContext | undefined;
  let userId: string;

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis');
    userId = (await idp.createUser(alice)).id;
    web = await startRelyingPartyApp(idp, { clientId: 'web-one', name: 'Web One', scope: 'openid email profile offline_access' });
    desktop = await startRelyingPartyApp(idp, { clientId: 'desktop-two', name: 'Desktop Two', scope: 'openid email offline_access' });
  });

  afterAll(async () => {
    await contextA?.close();
    await contextB?.close();
    await web?.close();
    await desktop?.close();
    await idp?.stop();
  });

  it('signs in with SSO, lists sessions and apps on /account, revokes, signs out others, and logs out', async ({ onTestFailed }) => {
    onTestFailed(() => {
      const problems = idp.logs.filter((line) => /"level":(40|50|60)/.test(line));
      console.error(`provider warnings and errors:\n${problems.join('')}\nweb failures: ${web.failures.join('\n')}\ndesktop failures: ${desktop.failures.join('\n')}`);
    });
    const verifyLogoutToken = createLogoutTokenVerifier(idp.issuer);
    // Two browser contexts: separate cookie jars, so two provider sessions.
    contextA = await newContext();
    contextB = await newContext();
    const pageA = await contextA.newPage();
    const pageB = await contextB.newPage();
    const providerErrors = [pageA, pageB].map((page) => watchProviderErrors(page, idp.issuer));
    let webA!: SignIn;
    let desktopA!: SignIn;
    let webB!: SignIn;
    let uidA = '';
    let uidB = '';

    await step('1. sign in: password for Web One, SSO for Desktop Two, password in a second browser', async () => {
      webA = await signInWithPassword(pageA, idp.issuer, web, alice);

      // Same browser, second app: the provider session signs it in without asking for the password.
      await pageA.goto(desktop.signInUrl);
      expect(pageA.url().startsWith(`${desktop.base}/callback?`)).toBe(true);
      expect(await pageA.locator('input[name="password"]').count()).toBe(0);
      desktopA = await landedSignIn(pageA, desktop);

      webB = await signInWithPassword(pageB, idp.issuer, web, alice);
      // Two password sign-ins in all: one per browser.
      const logins = idp.logs.filter((line) => (JSON.parse(line) as { event?: unknown }).event === 'login.success');
      expect(logins).toHaveLength(2);
      expect(webA.sub).toBe(userId);
      expect(desktopA.sub).toBe(userId);
      expect(webB.sub).toBe(userId);
      // The second browser is a second provider session.
      expect(webB.sid).not.toBe(webA.sid);
    });

    await step('2. /account lists both sessions and both apps', async () => {
      await pageA.goto(`${idp.issuer}/account`);
      expect(pageA.url()).toBe(`${idp.issuer}/account`);
      const sessions = pageA.locator('#sessions > li');
      expect(await sessions.count()).toBe(2);

      const badge = pageA.locator('.badge', { hasText: 'This browser' });
      const current = sessions.filter({ has: badge });
      expect(await current.count()).toBe(1);
      uidA = (await current.getAttribute('data-session-uid')) ?? '';
      expect(uidA).not.toBe('');
      const title = await current.locator('.item-title').innerText();
      expect(title).toContain('Chrome on Linux');
      expect(title).toMatch(/Chrome on Linux, signed in (just now|\d+ minutes? ago)/);
      const appsLine = await current.getByText('Apps:').innerText();
      expect(appsLine).toMatch(/^Apps: (Web One, Desktop Two|Desktop Two, Web One)$/);

      const other = sessions.filter({ hasNot: badge });
      expect(await other.count()).toBe(1);
      uidB = (await other.getAttribute('data-session-uid')) ?? '';
      expect(uidB).not.toBe(uidA);
      expect(await other.locator('.item-title').innerText()).toContain('Chrome on Linux, signed in');
      expect(await other.getByText('Apps:').innerText()).toBe('Apps: Web One');
      expect(await pageA.getByRole('button', { name: 'Sign out all other sessions' }).count()).toBe(1);

      const apps = pageA.locator('#apps > li');
      expect(await apps.count()).toBe(2);
      expect(await pageA.locator('#apps > li[data-client-id="web-one"] .item-title').innerText()).toBe('Web One');
      expect(await pageA.locator('#apps > li[data-client-id="desktop-two"] .item-title').innerText()).toBe('Desktop Two');
    });

    await step('3. revoking Desktop Two kills its tokens and tells it, Web One keeps working', async () => {
      await pageA.locator('#apps > li[data-client-id="desktop-two"]').getByRole('button', { name: 'Revoke access' }).click();
      await pageA.waitForURL((url) => url.pathname === '/account' && url.searchParams.get('notice') === 'app-revoked');
      expect(await pageA.getByRole('status').innerText()).toContain('access is revoked');
      expect(await pageA.locator('#apps > li[data-client-id="desktop-two"]').count()).toBe(0);
      expect(await pageA.locator('#apps > li[data-client-id="web-one"]').count()).toBe(1);
      expect(await pageA.locator(`#sessions > li[data-session-uid="${uidA}"]`).getByText('Apps:').innerText()).toBe('Apps: Web One');

      expect(await oauthError(oidc.refreshTokenGrant(desktop.rp.config, desktopA.refreshToken))).toBe('invalid_grant');
      expect((await oidc.tokenIntrospection(desktop.rp.config, desktopA.tokens.access_token)).active).toBe(false);
      await refresh(web, webA);

      const token = await logoutTokenFor(desktop, desktopA.sid);
      expect((await verifyLogoutToken(token, desktop.clientId, userId))['sid']).toBe(desktopA.sid);
    });

    await step('4. "Sign out all other sessions" ends the second browser\'s session', async () => {
      await pageA.getByRole('button', { name: 'Sign out all other sessions' }).click();
      await pageA.waitForURL((url) => url.pathname === '/account' && url.searchParams.get('notice') === 'others-ended');

      expect(await oauthError(oidc.refreshTokenGrant(web.rp.config, webB.refreshToken))).toBe('invalid_grant');
      expect((await oidc.tokenIntrospection(web.rp.config, webB.tokens.access_token)).active).toBe(false);
      const token = await logoutTokenFor(web, webB.sid);
      expect((await verifyLogoutToken(token, web.clientId, userId))['sid']).toBe(webB.sid);

      const sessions = pageA.locator('#sessions > li');
      expect(await sessions.count()).toBe(1);
      expect(await sessions.getAttribute('data-session-uid')).toBe(uidA);
      expect(await pageA.getByText('You are not signed in anywhere else.').count()).toBe(1);
      expect(await pageA.getByRole('button', { name: 'Sign out all other sessions' }).count()).toBe(0);
      // This browser's session, and Web One's tokens from it, are untouched.
      await refresh(web, webA);
      expect(web.logoutTokens().filter((raw) => decodeJwt(raw)['sid'] === webA.sid)).toEqual([]);

      // The second browser has no session any more: /account sends it to the login page.
      await pageB.goto(`${idp.issuer}/account`);
      expect(new URL(pageB.url()).pathname).toMatch(/^\/interaction\//);
      expect(await pageB.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
      expect(await pageB.locator('body').innerText()).toContain('to continue to JobSwipe account');
      expect(await pageB.getByLabel('Password').isVisible()).toBe(true);
    });

    await step('5. RP-initiated logout from Web One', async () => {
      expect(web.rp.config.serverMetadata().end_session_endpoint).toBe(`${idp.issuer}/session/end`);
      const endSession = oidc.buildEndSessionUrl(web.rp.config, {
        id_token_hint: webA.idToken,
        post_logout_redirect_uri: web.postLogoutRedirectUri,
      });
      await pageA.goto(endSession.href);
      expect(await pageA.getByRole('heading', { level: 1 }).innerText()).toBe('Sign out of JobSwipe?');
      expect(await pageA.getByRole('button', { name: 'Sign out of Web One only' }).count()).toBe(1);
      await pageA.getByRole('button', { name: 'Sign out', exact: true }).click();
      await pageA.waitForURL(atUrl(web.postLogoutRedirectUri));
      expect(await pageA.locator('#status').innerText()).toBe('signed out');

      const token = await logoutTokenFor(web, webA.sid);
      expect((await verifyLogoutToken(token, web.clientId, userId))['sid']).toBe(webA.sid);
      // offline_access refresh tokens outlive the browser session (OpenID Connect Core §11).
      await refresh(web, webA);

      // The provider session is gone from this browser.
      await pageA.goto(`${idp.issuer}/account`);
      expect(new URL(pageA.url()).pathname).toMatch(/^\/interaction\//);
      expect(await pageA.getByLabel('Password').isVisible()).toBe(true);
    });

    await step('6. every logout token received is valid, and no provider response was an error', async () => {
      const received = [
        ...web.backchannel.map((request) => ({ app: web, request })),
        ...desktop.backchannel.map((request) => ({ app: desktop, request })),
      ];
      for (const { request } of received) {
        expect(request.method).toBe('POST');
        expect(request.contentType).toBe('application/x-www-form-urlencoded');
        expect(request.logoutToken).toEqual(expect.any(String));
      }
      const sids = new Map<string, string[]>();
      const jtis = new Set<string>();
      for (const { app, request } of received) {
        const payload = await verifyLogoutToken(request.logoutToken!, app.clientId, userId);
        sids.set(app.clientId, [...(sids.get(app.clientId) ?? []), String(payload['sid'])]);
        jtis.add(String(payload.jti));
      }
      // One per ended session and app, no more: Desktop Two for session A, Web One for B then A.
      expect(sids.get('desktop-two')).toEqual([desktopA.sid]);
      expect(sids.get('web-one')).toEqual([webB.sid, webA.sid]);
      expect(jtis.size).toBe(received.length);
      expect(web.failures).toEqual([]);
      expect(desktop.failures).toEqual([]);
      expect(providerErrors.flat()).toEqual([]);
    });
  }, 45_000);
});

describe('RP-initiated logout with a back-channel endpoint that never answers (postgres+redis)', () => {
  const TIMEOUT_SECONDS = 5;
  let idp: TestServer;
  let stuck: RelyingPartyApp;
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis', {
      BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS: String(TIMEOUT_SECONDS),
      // One attempt, so the provider gives up (and stops) within the timeout.
      BACKCHANNEL_LOGOUT_RETRIES: '0',
    });
    await idp.createUser(alice);
    stuck = await startRelyingPartyApp(idp, { clientId: 'stuck', name: 'Stuck App', scope: 'openid offline_access', backchannel: 'hang' });
  });

  afterAll(async () => {
    await context?.close();
    await stuck?.close();
    await idp?.stop();
  });

  it('shows the signed-out page at once; the delivery times out in the background', async () => {
    const verifyLogoutToken = createLogoutTokenVerifier(idp.issuer);
    context = await newContext();
    const page = await context.newPage();
    const signIn = await signInWithPassword(page, idp.issuer, stuck, alice);

    await page.goto(oidc.buildEndSessionUrl(stuck.rp.config, { id_token_hint: signIn.idToken, post_logout_redirect_uri: stuck.postLogoutRedirectUri }).href);
    const button = page.getByRole('button', { name: 'Sign out', exact: true });
    await button.waitFor();
    const clicked = Date.now();
    await button.click();
    await page.waitForURL(atUrl(stuck.postLogoutRedirectUri), { waitUntil: 'commit' });
    const elapsed = Date.now() - clicked;
    expect(elapsed).toBeLessThan(2_000);
    await page.waitForLoadState();
    expect(await page.locator('#status').innerText()).toBe('signed out');

    // The logout token was sent; the relying party holds the request without answering.
    const token = await logoutTokenFor(stuck, signIn.sid);
    await verifyLogoutToken(token, stuck.clientId, signIn.sub);

    // The provider gives up after BACKCHANNEL_LOGOUT_TIMEOUT_SECONDS and says so.
    const notDelivered = () =>
      idp.logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .filter((line) => line['msg'] === 'logout token not delivered' && line['clientId'] === stuck.clientId);
    await expect.poll(() => notDelivered().length, { timeout: (TIMEOUT_SECONDS + 4) * 1000, interval: 200 }).toBe(1);
    expect(Date.now() - clicked).toBeGreaterThanOrEqual(TIMEOUT_SECONDS * 1000 - 500);
    expect(notDelivered()[0]).toMatchObject({ event: 'backchannel_logout', attempts: 1, error: 'timed out' });
  }, 30_000);
});
