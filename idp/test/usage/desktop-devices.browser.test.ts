import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as oidc from 'openid-client';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import { authorizationRequest, exchangeCode, relyingParty, type AuthorizationRequest, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/*
 * The desktop device limit through real sign-ins in headless Chromium: a desktop app (a native,
 * public client with a loopback redirect, like clients/desktop) signs in from two browsers, which are
 * two devices. The second is refused with the plan's limit, returns to the app with access_denied,
 * signs the first device out on /account and then signs in; a returning device is not counted twice.
 */

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

interface DesktopApp {
  base: string;
  /** Refresh tokens of completed sign-ins, in order. */
  refreshTokens: string[];
  rp: RelyingParty;
  close(): Promise<void>;
}

/** The desktop app's loopback listener: /login starts a sign-in, /callback finishes it (or shows the error). */
async function startDesktopApp(idp: TestServer): Promise<DesktopApp> {
  const pending = new Map<string, AuthorizationRequest>();
  const refreshTokens: string[] = [];
  let rp: RelyingParty | undefined;
  const page = (status: string) => `<!doctype html><html><head><meta charset="utf-8"><title>Desktop</title></head><body><h1 id="status">${status}</h1></body></html>`;

  async function handle(request: IncomingMessage, response: ServerResponse) {
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    const send = (status: number, body: string, headers: Record<string, string> = {}) => {
      response.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...headers });
      response.end(body);
    };
    if (!rp) return send(503, page('starting'));
    if (url.pathname === '/login') {
      const authorization = await authorizationRequest(rp, 'openid email offline_access');
      pending.set(authorization.state, authorization);
      return send(302, '', { location: authorization.url });
    }
    if (url.pathname === '/callback') {
      const authorization = pending.get(url.searchParams.get('state') ?? '');
      if (!authorization) return send(400, page('unknown state'));
      pending.delete(authorization.state);
      const error = url.searchParams.get('error');
      if (error) return send(200, page(`error: ${error}`));
      const tokens = await exchangeCode(rp, authorization, `${rp.redirectUri}${url.search}`);
      refreshTokens.push(tokens.refresh_token ?? '');
      return send(200, page('signed in'));
    }
    return send(404, page('not found'));
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500);
      response.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const client = await idp.registerClient({
    client_id: 'desktop',
    client_name: 'JobSwipe Desktop',
    application_type: 'native',
    token_endpoint_auth_method: 'none',
    redirect_uris: [`${base}/callback`],
    grant_types: ['authorization_code', 'refresh_token'],
    first_party: true,
  });
  rp = await relyingParty(idp.issuer, client);
  return {
    base,
    refreshTokens,
    get rp() {
      return rp!;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('desktop device limit in Chromium (postgres+redis)', () => {
  let idp: TestServer;
  let app: DesktopApp;
  let chromium: Browser;
  let aliceId: string;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    idp = await startTestServer('postgres+redis');
    aliceId = (await idp.createUser(alice)).id;
    app = await startDesktopApp(idp);
    chromium = await launchChromium();
  });

  afterAll(async () => {
    for (const context of contexts) await context.close();
    await chromium?.close();
    await app?.close();
    await idp?.stop();
  });

  /** A device: a browser of its own (its own cookies, so its own provider session). */
  async function device(): Promise<Page> {
    const context = await chromium.newContext();
    contexts.push(context);
    return context.newPage();
  }

  /** The text of the first element matching `selector`, once it is there. */
  async function text(page: Page, selector: string): Promise<string> {
    const element = page.locator(selector).first();
    await element.waitFor();
    return (await element.textContent())?.trim() ?? '';
  }

  /** Starts the app's sign-in; signs in at the provider when it asks. */
  async function signIn(page: Page): Promise<void> {
    await page.goto(`${app.base}/login`);
    if (await page.locator('input[name="password"]').count()) {
      await page.fill('input[name="email"]', alice.email);
      await page.fill('input[name="password"]', alice.password);
      await page.click('button[type="submit"]');
      await page.waitForLoadState();
    }
  }

  it('refuses one device more with the plan’s limit, then lets it in once a device is signed out', async () => {
    const laptop = await device();
    const laptopErrors = watchProviderErrors(laptop, idp.issuer);
    await signIn(laptop);
    expect(await text(laptop, '#status')).toBe('signed in');

    // The same device signing in again keeps its grant: still one device.
    await signIn(laptop);
    expect(await text(laptop, '#status')).toBe('signed in');
    expect(await idp.server.libraries.sessions.desktopDevices(aliceId)).toHaveLength(1);
    expect(laptopErrors).toEqual([]);

    const desktop = await device();
    await signIn(desktop);
    expect(await text(desktop, 'h1')).toBe('Your Free plan allows 1 desktop device');
    expect(await desktop.locator('#sign-one-out').getAttribute('href')).toBe('/account');
    await desktop.click('button:has-text("Return to JobSwipe Desktop")');
    expect(await text(desktop, '#status')).toBe('error: access_denied');
    expect(app.refreshTokens).toHaveLength(2);

    // The user signs the laptop out on their account page (already signed in to the provider here).
    await desktop.goto(`${idp.issuer}/account`);
    expect(await text(desktop, '#desktop-devices')).toBe('1 of 1 desktop device in use');
    await desktop.click('#devices button:has-text("Sign out this device")');
    expect(await text(desktop, '.notice')).toContain('That desktop device is signed out');
    expect(await text(desktop, '#desktop-devices')).toBe('0 of 1 desktop device in use');
    await expect(oidc.refreshTokenGrant(app.rp.config, app.refreshTokens[1] ?? '')).rejects.toMatchObject({ error: 'invalid_grant' });

    await signIn(desktop);
    expect(await text(desktop, '#status')).toBe('signed in');

    // Now the laptop is the one more: refused, until the plan allows more devices.
    await signIn(laptop);
    expect(await text(laptop, 'h1')).toBe('Your Free plan allows 1 desktop device');
    await idp.server.libraries.plans.save({ id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: [] }, { kind: 'administrator' });
    await idp.server.libraries.plans.setPlan(aliceId, 'pro', { kind: 'administrator' });
    await laptop.click('text=try again');
    expect(await text(laptop, '#status')).toBe('signed in');
    await laptop.goto(`${idp.issuer}/account`);
    expect(await text(laptop, '#desktop-devices')).toBe('2 of 3 desktop devices in use');
    expect(laptopErrors.filter((error) => !error.startsWith('403 GET /interaction/'))).toEqual([]);
  });
});
