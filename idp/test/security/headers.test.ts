import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import * as oidc from 'openid-client';
import type { Browser as Chromium, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cspNonceOf, HSTS, securityHeaders } from '../../src/http/security-headers.ts';
import { Browser, type BrowserResponse } from '../../../test/support/browser.ts';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import {
  authorizationRequest,
  exchangeCode,
  relyingParty,
  signIn,
  type AuthorizationRequest,
  type RelyingParty,
} from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/**
 * Security headers on every response: a strict CSP (no inline script without a nonce or the
 * provider's own hash, no framing), nosniff, no referrer, X-Frame-Options, and HSTS in production.
 * Checked on the wire for each kind of page and JSON endpoint, then in headless Chromium: the
 * sign-in and logout flows raise no CSP violation, and framing the login page is refused.
 */

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const CALLBACK = 'https://rp.example/callback';
const SIGNED_OUT = 'https://rp.example/signed-out';

type HeaderSource = Headers | Record<string, string | null>;
const header = (headers: HeaderSource, name: string): string | null =>
  headers instanceof Headers ? headers.get(name) : (headers[name] ?? null);

/** A Content-Security-Policy header as directive name → source list (either separator style). */
function directives(csp: string | null): Map<string, string[]> {
  expect(csp, 'Content-Security-Policy header').toEqual(expect.any(String));
  const parsed = new Map<string, string[]>();
  for (const directive of csp!.split(';')) {
    const [name, ...values] = directive.trim().split(/\s+/);
    if (!name) continue;
    expect(parsed.has(name), `${name} appears once`).toBe(false);
    parsed.set(name, values);
  }
  return parsed;
}

const NONCE = /^'nonce-[A-Za-z0-9+/]{22}=='$/;
const SHA256 = /^'sha256-[A-Za-z0-9+/]{43}='$/;

/**
 * The policy every page gets. `formAction` says whether the page is one of ours that only posts to
 * this origin (form-action 'self'), or part of the sign-in flow (none, see security-headers.ts);
 * `scriptHashes` is how many hashes oidc-provider added for its own inline scripts.
 */
function expectStrictCsp(headers: HeaderSource, options: { formAction: boolean; scriptHashes?: number }): { nonce: string; hashes: string[] } {
  const csp = directives(header(headers, 'content-security-policy'));
  expect(csp.get('default-src')).toEqual(["'none'"]);
  expect(csp.get('style-src')).toEqual(["'self'"]);
  expect(csp.get('img-src')).toEqual(["'self'", 'data:']);
  expect(csp.get('frame-ancestors')).toEqual(["'none'"]);
  expect(csp.get('base-uri')).toEqual(["'none'"]);
  expect(csp.get('form-action')).toEqual(options.formAction ? ["'self'"] : undefined);
  const scriptSrc = csp.get('script-src') ?? [];
  expect(scriptSrc[0]).toMatch(NONCE);
  const hashes = scriptSrc.slice(1);
  expect(hashes).toHaveLength(options.scriptHashes ?? 0);
  for (const hash of hashes) expect(hash).toMatch(SHA256);
  // Nothing that loosens it: no unsafe-inline/eval, no host or scheme sources for script.
  expect([...csp.keys()].sort()).toEqual(
    ['base-uri', 'default-src', 'frame-ancestors', 'img-src', 'script-src', 'style-src', ...(options.formAction ? ['form-action'] : [])].sort(),
  );
  return { nonce: scriptSrc[0]!.slice("'nonce-".length, -1), hashes };
}

/** The headers every response gets, whatever its type; HSTS only in production. */
function expectBaseHeaders(headers: HeaderSource, options: { hsts: boolean }): void {
  expect(header(headers, 'x-content-type-options')).toBe('nosniff');
  expect(header(headers, 'referrer-policy')).toBe('no-referrer');
  expect(header(headers, 'x-frame-options')).toBe('DENY');
  expect(header(headers, 'strict-transport-security')).toBe(options.hsts ? HSTS : null);
}

function expectHtmlPage(response: BrowserResponse, options: { formAction: boolean; scriptHashes?: number }) {
  expect(response.headers.get('content-type')).toMatch(/^text\/html/);
  expectBaseHeaders(response.headers, { hsts: false });
  return expectStrictCsp(response.headers, options);
}

/** The contents of the inline <script> elements of a page. */
function inlineScripts(body: string): string[] {
  return [...body.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((match) => match[1] ?? '');
}

describe('the middleware on its own', () => {
  async function serve(production: boolean, handler: Koa.Middleware): Promise<{ url: string; close(): Promise<void> }> {
    const app = new Koa();
    app.use(securityHeaders({ production }));
    app.use(handler);
    const server = createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    };
  }

  it('sends HSTS in production only, and every other header in both', async () => {
    for (const production of [true, false]) {
      const app = await serve(production, (ctx) => {
        ctx.type = 'html';
        ctx.body = '<!doctype html><p>hi</p>';
      });
      try {
        const response = await fetch(`${app.url}/account`);
        expectBaseHeaders(response.headers, { hsts: production });
        expect(response.headers.get('strict-transport-security')).toBe(production ? 'max-age=63072000; includeSubDomains' : null);
        expectStrictCsp(response.headers, { formAction: true });
      } finally {
        await app.close();
      }
    }
  });

  it('puts the headers on the Node response before a handler that writes to it directly (as the provider does)', async () => {
    const app = await serve(true, async (ctx) => {
      ctx.respond = false;
      ctx.res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      ctx.res.end(`<!doctype html><p>${cspNonceOf(ctx)}</p>`);
    });
    try {
      const response = await fetch(`${app.url}/session/end`);
      expectBaseHeaders(response.headers, { hsts: true });
      const { nonce } = expectStrictCsp(response.headers, { formAction: false });
      // The nonce in the policy is the one pages can read from ctx.state, fresh for each response.
      expect(await response.text()).toBe(`<!doctype html><p>${nonce}</p>`);
      const second = expectStrictCsp((await fetch(`${app.url}/session/end`)).headers, { formAction: false });
      expect(second.nonce).not.toBe(nonce);
    } finally {
      await app.close();
    }
  });

  it("gives form-action 'self' to our own pages only, not to the sign-in flow", async () => {
    const app = await serve(false, (ctx) => {
      ctx.body = 'ok';
    });
    try {
      for (const path of ['/', '/account', '/account/', '/account/sessions/abc/sign-out']) {
        expectStrictCsp((await fetch(`${app.url}${path}`)).headers, { formAction: true });
      }
      for (const path of ['/auth', '/auth/abc', '/interaction/abc', '/interaction/abc/login', '/session/end', '/session/end/confirm', '/accounts', '/x/account']) {
        expectStrictCsp((await fetch(`${app.url}${path}`)).headers, { formAction: false });
      }
    } finally {
      await app.close();
    }
  });
});

describe('headers on every kind of response (embedded)', () => {
  let idp: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    idp = await startTestServer('embedded');
    await idp.createUser(alice);
    const client = await idp.registerClient({
      client_id: 'rp',
      client_name: 'Example RP',
      redirect_uris: [CALLBACK],
      post_logout_redirect_uris: [SIGNED_OUT],
      first_party: true,
    });
    rp = await relyingParty(idp.issuer, client);
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it("the home page: strict CSP with form-action 'self', a fresh nonce each time, no inline script", async () => {
    const browser = new Browser();
    const first = await browser.request(`${idp.issuer}/`);
    expect(first.status).toBe(200);
    const { nonce } = expectHtmlPage(first, { formAction: true });
    expect(inlineScripts(first.body)).toEqual([]);
    expect(first.body).toContain('<link rel="stylesheet" href="/assets/idp.css">');
    const second = expectHtmlPage(await browser.request(`${idp.issuer}/`), { formAction: true });
    expect(second.nonce).not.toBe(nonce);
    const stylesheet = await browser.request(`${idp.issuer}/assets/idp.css`);
    expect(stylesheet.headers.get('content-type')).toMatch(/^text\/css/);
    expectBaseHeaders(stylesheet.headers, { hsts: false });
  });

  it('/account (a redirect when signed out), and the authorization endpoint it sends the browser to', async () => {
    const browser = new Browser();
    const account = await browser.request(`${idp.issuer}/account`);
    expect(account.status).toBe(302);
    expect(account.location).toBe(`${idp.issuer}/account/sign-in`);
    expectHtmlPage(account, { formAction: true });

    const signInRedirect = await browser.request(account.location!);
    expect(new URL(signInRedirect.location!).pathname).toBe('/auth');
    expectBaseHeaders(signInRedirect.headers, { hsts: false });

    // The authorization endpoint's own redirect to the login page (written by oidc-provider).
    const authorization = await browser.request(signInRedirect.location!);
    expect(authorization.status).toBe(303);
    expect(new URL(authorization.location!).pathname).toMatch(/^\/interaction\//);
    expectBaseHeaders(authorization.headers, { hsts: false });
    expectStrictCsp(authorization.headers, { formAction: false });
  });

  it('the login page reached through an authorization request: no form-action, no inline script', async () => {
    const browser = new Browser();
    const request = await authorizationRequest(rp, 'openid');
    const login = await browser.follow(request.url);
    expect(new URL(login.url).pathname).toMatch(/^\/interaction\/[^/]+$/);
    expect(login.status).toBe(200);
    expect(login.body).toContain('name="password"');
    expectHtmlPage(login, { formAction: false });
    // One script, the passkey button's: ours, same-origin, empty, admitted by this response's nonce.
    const nonce = /'nonce-([^']+)'/.exec(login.headers.get('content-security-policy') ?? '')?.[1];
    expect([...login.body.matchAll(/<script[^>]*>[^<]*<\/script>/g)].map((match) => match[0])).toEqual([`<script nonce="${nonce}" src="/assets/passkeys.js" defer></script>`]);
    expect(login.body.match(/<script/g)).toHaveLength(1);
    expect(login.body).not.toMatch(/\son[a-z]+=/);
  });

  it("the authorization endpoint's error page (unknown client), rendered by oidc-provider", async () => {
    for (const query of ['client_id=unknown', 'client_id=unknown&response_type=code&scope=openid&redirect_uri=https%3A%2F%2Fevil.example%2F']) {
      const page = await new Browser().request(`${idp.issuer}/auth?${query}`, { headers: { accept: 'text/html' } });
      expect(page.status).toBe(400);
      expect(page.body).toContain('Unknown app');
      expectHtmlPage(page, { formAction: false });
    }
    // An unknown path of the provider (its own plain-text 404) is covered too.
    const missing = await fetch(`${idp.issuer}/no-such-page`);
    expect(missing.status).toBe(404);
    expectBaseHeaders(missing.headers, { hsts: false });
  });

  it("the logout confirmation page, the provider's auto-submitting pages, and the signed-out page", async () => {
    const browser = new Browser();
    const request = await authorizationRequest(rp, 'openid');
    const callback = await signIn(browser, idp.issuer, request, CALLBACK, alice);
    expect(callback.location?.startsWith(`${CALLBACK}?`)).toBe(true);
    const tokens = await exchangeCode(rp, request, callback.location!);

    // response_mode=form_post: oidc-provider's page with an inline auto-submit script, allowed by
    // the hash it adds to our script-src.
    const formPostRequest = await authorizationRequest(rp, 'openid', { response_mode: 'form_post' });
    const formPost = await browser.follow(formPostRequest.url);
    expect(formPost.status).toBe(200);
    expect(formPost.body).toContain(`action="${CALLBACK}"`);
    const formPostScripts = inlineScripts(formPost.body);
    expect(formPostScripts).toHaveLength(1);
    const { hashes } = expectHtmlPage(formPost, { formAction: false, scriptHashes: 1 });
    expect(hashes).toEqual([`'sha256-${createHash('sha256').update(formPostScripts[0]!).digest('base64')}'`]);

    const endSession = oidc.buildEndSessionUrl(rp.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: SIGNED_OUT });
    const confirmation = await browser.request(endSession.href);
    expect(confirmation.status).toBe(200);
    expect(confirmation.body).toContain('Sign out of JobSwipe?');
    expectHtmlPage(confirmation, { formAction: false });
    expect(inlineScripts(confirmation.body)).toEqual([]);

    const confirmed = await browser.request(`${idp.issuer}/session/end/confirm`, {
      form: { xsrf: /name="xsrf" value="([^"]+)"/.exec(confirmation.body)![1]!, logout: 'yes' },
    });
    expect(confirmed.status).toBe(303);
    expect(confirmed.location).toBe(SIGNED_OUT);
    expectBaseHeaders(confirmed.headers, { hsts: false });
    expectStrictCsp(confirmed.headers, { formAction: false });

    // Without a session the provider renders a page that posts the logout form by script.
    const noSession = await browser.request(`${idp.issuer}/session/end`);
    expect(noSession.status).toBe(200);
    const noSessionScripts = inlineScripts(noSession.body);
    expect(noSessionScripts).toHaveLength(1);
    const noSessionPolicy = expectHtmlPage(noSession, { formAction: false, scriptHashes: 1 });
    expect(noSessionPolicy.hashes).toEqual([`'sha256-${createHash('sha256').update(noSessionScripts[0]!).digest('base64')}'`]);

    const success = await browser.request(`${idp.issuer}/session/end/success`);
    expect(success.status).toBe(200);
    expectHtmlPage(success, { formAction: false });
  });

  it('JSON endpoints: the base headers, and CORS as before', async () => {
    // The registered client's origin: CORS is answered only for those (idp/test/security/cors.test.ts).
    const origin = new URL(CALLBACK).origin;
    for (const path of ['/.well-known/openid-configuration', '/jwks']) {
      const response = await fetch(`${idp.issuer}${path}`, { headers: { origin } });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/json/);
      expectBaseHeaders(response.headers, { hsts: false });
      expect(response.headers.get('access-control-allow-origin')).toBe(origin);
      await response.json();
    }
    const discovery = await fetch(`${idp.issuer}/.well-known/openid-configuration`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'GET' } });
    expect(discovery.status).toBe(204);
    expect(discovery.headers.get('access-control-allow-origin')).toBe(origin);

    const token = await fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(400);
    expect(token.headers.get('content-type')).toMatch(/json/);
    expectBaseHeaders(token.headers, { hsts: false });

    const userinfo = await fetch(`${idp.issuer}/me`, { headers: { authorization: 'Bearer nope' } });
    expect(userinfo.status).toBe(401);
    expectBaseHeaders(userinfo.headers, { hsts: false });

    const health = await fetch(`${idp.issuer}/healthz`);
    expectBaseHeaders(health.headers, { hsts: false });
  });
});

describe('in production (postgres, NODE_ENV=production)', () => {
  let idp: TestServer;

  beforeAll(async () => {
    idp = await startTestServer('postgres', {
      NODE_ENV: 'production',
      ISSUER: 'https://id.jobswipe.test',
      COOKIE_KEYS: randomBytes(32).toString('base64url'),
      KEYSTORE_KEK: randomBytes(32).toString('base64'),
      SMTP_URL: 'smtp://127.0.0.1:2525',
    });
    expect(idp.server.config.production).toBe(true);
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('sends Strict-Transport-Security on pages, provider pages and JSON', async () => {
    for (const path of ['/', '/auth?client_id=unknown', '/.well-known/openid-configuration', '/jwks']) {
      const response = await fetch(`${idp.issuer}${path}`, { redirect: 'manual', headers: { accept: 'text/html' } });
      expect(response.status, path).toBeLessThan(500);
      expect(response.headers.get('strict-transport-security'), path).toBe(HSTS);
      expect(response.headers.get('x-content-type-options'), path).toBe('nosniff');
    }
  });
});

/** A relying party web app on 127.0.0.1: sign-in, callback (GET or form_post), signed-out page. */
interface RelyingPartyApp {
  base: string;
  rp: RelyingParty;
  /** ID tokens of completed sign-ins, newest last. */
  idTokens: string[];
  callbacks: string[];
  failures: string[];
  close(): Promise<void>;
}

async function startRelyingPartyApp(idp: TestServer): Promise<RelyingPartyApp> {
  const pending = new Map<string, AuthorizationRequest>();
  const idTokens: string[] = [];
  const callbacks: string[] = [];
  const failures: string[] = [];
  let rp: RelyingParty | undefined;
  let base = '';

  const page = (body: string) => `<!doctype html><html><head><meta charset="utf-8"><title>RP</title></head><body>${body}</body></html>`;
  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', base);
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      response.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...headers });
      response.end(body);
    };
    if (!rp) throw new Error('relying party not configured yet');
    if (request.method === 'GET' && url.pathname === '/login') {
      const mode = url.searchParams.get('response_mode');
      const authorization = await authorizationRequest(rp, 'openid', mode ? { response_mode: mode } : {});
      pending.set(authorization.state, authorization);
      send(302, '', { location: authorization.url });
      return;
    }
    if (url.pathname === '/callback') {
      let params = url.searchParams;
      if (request.method === 'POST') {
        let body = '';
        request.setEncoding('utf8');
        for await (const chunk of request) body += chunk as string;
        params = new URLSearchParams(body);
      }
      callbacks.push(`${request.method} ${params.has('code') ? 'code' : [...params.keys()].join(',')}`);
      const authorization = pending.get(params.get('state') ?? '');
      if (!authorization) throw new Error(`callback with unknown state: ${[...params.keys()].join(',')}`);
      pending.delete(authorization.state);
      const callback = new URL(`${base}/callback`);
      for (const [name, value] of params) callback.searchParams.set(name, value);
      const tokens = await exchangeCode(rp, authorization, callback.toString());
      idTokens.push(tokens.id_token!);
      send(200, page('<h1 id="status">signed in</h1>'));
      return;
    }
    if (request.method === 'GET' && url.pathname === '/signed-out') {
      send(200, page('<h1 id="status">signed out</h1>'));
      return;
    }
    send(404, page('<h1>Not found</h1>'));
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
  await listenOn(server, '127.0.0.1');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = await idp.registerClient({
    client_id: 'browser-rp',
    client_name: 'Browser RP',
    redirect_uris: [`${base}/callback`],
    post_logout_redirect_uris: [`${base}/signed-out`],
    first_party: true,
  });
  rp = await relyingParty(idp.issuer, client);
  const configured = rp;
  return {
    base,
    rp: configured,
    idTokens,
    callbacks,
    failures,
    close: () => closeServer(server),
  };
}

async function listenOn(server: Server, host: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

interface Violation {
  page: string;
  directive: string;
  blocked: string;
}

/**
 * Records CSP violations two ways: the page's securitypolicyviolation events (reported through a
 * binding from a script Playwright injects, which no CSP applies to) and Chromium's console errors.
 */
async function watchCsp(context: BrowserContext): Promise<{ violations: Violation[]; console: string[] }> {
  const violations: Violation[] = [];
  const consoleErrors: string[] = [];
  await context.exposeBinding('__reportCspViolation', (_source, violation: Violation) => {
    violations.push(violation);
  });
  // Browser-side code as text: this project compiles without the DOM library.
  await context.addInitScript(`document.addEventListener('securitypolicyviolation', (event) => {
    window.__reportCspViolation({ page: event.documentURI, directive: event.effectiveDirective, blocked: event.blockedURI });
  });`);
  context.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) consoleErrors.push(message.text());
  });
  return { violations, console: consoleErrors };
}


describe('in Chromium (embedded)', () => {
  let chromium: Promise<Chromium> | undefined;
  let idp: TestServer;
  let app: RelyingPartyApp;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    chromium = launchChromium();
    // A missing Chromium fails each test with launchChromium's message, not this hook.
    chromium.catch(() => {});
    idp = await startTestServer('embedded');
    await idp.createUser(alice);
    app = await startRelyingPartyApp(idp);
  });
  afterAll(async () => {
    for (const context of contexts) await context.close();
    await (await chromium?.catch(() => undefined))?.close();
    await app?.close();
    await idp?.stop();
  });

  async function newContext(): Promise<BrowserContext> {
    if (!chromium) throw new Error('Chromium was not launched');
    const context = await (await chromium).newContext();
    context.setDefaultTimeout(10_000);
    contexts.push(context);
    return context;
  }

  it('signs in (query and form_post), logs out (with and without a session) with no CSP violation', async ({ onTestFailed }) => {
    const context = await newContext();
    const csp = await watchCsp(context);
    const page = await context.newPage();
    const providerErrors = watchProviderErrors(page, idp.issuer);
    onTestFailed(() => {
      console.error(`violations: ${JSON.stringify(csp)}\nRP failures: ${app.failures.join('\n')}\nprovider errors: ${providerErrors.join('\n')}`);
    });
    const atCallback = (url: URL) => url.origin === app.base && url.pathname === '/callback';

    // 1. The login page, styled by our stylesheet, posts and is redirected through /auth/:uid to the app.
    await page.goto(`${app.base}/login`);
    expect(new URL(page.url()).pathname).toMatch(/^\/interaction\//);
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign in');
    // Our stylesheet loaded and applies (style-src 'self').
    expect(await page.evaluate('[...document.styleSheets].map((sheet) => [sheet.href, sheet.cssRules.length > 0])')).toEqual([
      [`${idp.issuer}/assets/idp.css`, true],
    ]);
    expect(await page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth")).not.toBe('none');
    await page.getByLabel('Email').fill(alice.email);
    await page.getByLabel('Password').fill(alice.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.waitForURL(atCallback);
    expect(await page.locator('#status').innerText()).toBe('signed in');

    // 2. With the session, response_mode=form_post: the provider's page submits itself by script.
    await page.goto(`${app.base}/login?response_mode=form_post`);
    await page.waitForURL(atCallback);
    expect(await page.locator('#status').innerText()).toBe('signed in');
    expect(app.callbacks).toEqual(['GET code', 'POST code']);

    // 3. RP-initiated logout: our confirmation page, its form posts, the provider redirects to the app.
    const endSession = (idToken: string) =>
      oidc.buildEndSessionUrl(app.rp.config, { id_token_hint: idToken, post_logout_redirect_uri: `${app.base}/signed-out` }).href;
    await page.goto(endSession(app.idTokens.at(-1)!));
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Sign out of JobSwipe?');
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.waitForURL(`${app.base}/signed-out`);
    expect(await page.locator('#status').innerText()).toBe('signed out');

    // 4. Again, without a session: the provider's auto-submitting logout page (inline script).
    await page.goto(endSession(app.idTokens.at(-1)!));
    await page.waitForURL(`${app.base}/signed-out`);
    expect(await page.locator('#status').innerText()).toBe('signed out');

    expect(app.failures).toEqual([]);
    expect(providerErrors).toEqual([]);
    expect(csp.violations).toEqual([]);
    expect(csp.console).toEqual([]);

    // The watchers do see a violation: an injected inline script without the nonce is refused,
    // one carrying this response's nonce runs.
    const home = await page.goto(`${idp.issuer}/`);
    const nonce = /'nonce-([^']+)'/.exec((await home!.allHeaders())['content-security-policy'] ?? '')?.[1];
    expect(nonce).toEqual(expect.any(String));
    const ran = await page.evaluate(`(() => {
      for (const [name, nonce] of [['withoutNonce', ''], ['withNonce', ${JSON.stringify(nonce)}]]) {
        const script = document.createElement('script');
        if (nonce) script.nonce = nonce;
        script.textContent = 'window.' + name + ' = true;';
        document.head.append(script);
      }
      return { withoutNonce: window.withoutNonce === true, withNonce: window.withNonce === true };
    })()`);
    expect(ran).toEqual({ withoutNonce: false, withNonce: true });
    await expect.poll(() => csp.violations).toEqual([{ page: `${idp.issuer}/`, directive: 'script-src-elem', blocked: 'inline' }]);
    expect(csp.console.join('\n')).toMatch(/Executing inline script violates the following Content Security Policy directive 'script-src/);
  }, 45_000);

  it('refuses to show the login page (or any provider page) in a frame on another origin', async () => {
    // The framing page is on another origin of the same site (localhost, another port), so the
    // provider's SameSite=Lax cookies work inside the frame: without the headers it would show the
    // login form (a cross-site frame would not, for want of its interaction cookie).
    const request = await authorizationRequest(app.rp, 'openid');
    const errorPage = `${idp.issuer}/auth?client_id=unknown`;
    const framer = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(`<!doctype html><title>framer</title>
<iframe id="login" src="${request.url.replaceAll('&', '&amp;')}"></iframe>
<iframe id="error" src="${errorPage}"></iframe>`);
    });
    await listenOn(framer, '127.0.0.1');
    try {
      const framerUrl = `http://localhost:${(framer.address() as AddressInfo).port}/`;
      expect(new URL(framerUrl).origin).not.toBe(idp.issuer);
      const context = await newContext();
      const page = await context.newPage();
      const messages: string[] = [];
      page.on('console', (message) => messages.push(message.text()));
      const loaded: string[] = [];
      page.on('response', (response) => loaded.push(new URL(response.url()).pathname));
      await page.goto(framerUrl);

      // The frames were fetched (down to the login page itself), and refused: Chromium replaces a
      // refused frame with its own error page. (Without the headers, the first frame shows the login form.)
      expect(loaded.some((path) => path.startsWith('/interaction/'))).toBe(true);
      const frames = page.frames().filter((frame) => frame !== page.mainFrame());
      expect(frames).toHaveLength(2);
      for (const frame of frames) {
        expect(await frame.locator('input[name="password"]').count()).toBe(0);
        expect(await frame.locator('body').innerText()).not.toMatch(/Sign in|Unknown app|JobSwipe/);
        expect(frame.url()).toBe('chrome-error://chromewebdata/');
      }
      // Refused by frame-ancestors (X-Frame-Options, also sent, is ignored when it is present).
      await expect.poll(() => messages.filter((text) => text.includes("frame-ancestors 'none'")).length).toBe(2);
      for (const text of messages.filter((message) => message.includes('frame-ancestors'))) {
        expect(text).toMatch(/^Framing '.+' violates the following Content Security Policy directive: "frame-ancestors 'none'". The request has been blocked\.\s*$/);
      }
    } finally {
      await closeServer(framer);
    }
  }, 30_000);
});
