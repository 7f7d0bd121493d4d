import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generate } from 'otplib';
import type { Browser, BrowserContext, CDPSession, Page } from 'playwright-core';
import { expect } from 'vitest';
import { launchChromium, watchProviderErrors } from '../../../test/support/chromium.ts';
import { authorizationRequest, exchangeCode, relyingParty, type AuthorizationRequest, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type ServerSetup, type TestServer } from '../../../test/support/server.ts';

/*
 * What the two-factor suites share: the provider (with TRUST_PROXY=loopback, so each browser can come
 * from its own address), a relying party built with openid-client whose callback just answers, and
 * headless Chromium. Codes are computed here with otplib from the secret the page shows.
 */

export const ACR_MFA = 'urn:jobswipe:acr:mfa';
export const ACR_PWD = 'urn:jobswipe:acr:pwd';

export interface Harness {
  idp: TestServer;
  rp: RelyingParty;
  chromium: Browser;
  callback: string;
  stop(): Promise<void>;
}

export async function startHarness(setup: ServerSetup): Promise<Harness> {
  const server: Server = createServer((_request, response) => response.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const callback = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cb`;
  const chromium = launchChromium();
  chromium.catch(() => {});
  const idp = await startTestServer(setup, { TRUST_PROXY: 'loopback' });
  const client = await idp.registerClient({ client_id: 'rp', client_name: 'Partner App', redirect_uris: [callback], first_party: true });
  const rp = await relyingParty(idp.issuer, client);
  return {
    idp,
    rp,
    chromium: await chromium,
    callback,
    async stop() {
      await (await chromium.catch(() => undefined))?.close();
      await idp.stop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let users = 0;
let addresses = 0;

export async function newUser(idp: TestServer): Promise<{ id: string; email: string; password: string }> {
  users += 1;
  const user = { email: `mfa${users}-${Date.now()}@example.com`, password: `a good passphrase number ${users}` };
  const { id } = await idp.createUser(user);
  return { ...user, id };
}

/** A browser of its own, from an address of its own (the sign-in limits count per address). */
export async function newBrowser(h: Harness, ip = `203.0.113.${(addresses = (addresses % 250) + 1)}`) {
  const context = await h.chromium.newContext({ extraHTTPHeaders: { 'x-forwarded-for': ip } });
  const page = await context.newPage();
  const errors = watchProviderErrors(page, h.idp.issuer);
  return { context, page, errors, ip };
}

/** A code from the app for the 30-second step `steps` away from now (the provider accepts one step either side). */
export function codeFor(secret: string, steps = 0): Promise<string> {
  return generate({ secret, epoch: Math.floor(Date.now() / 1000) + steps * 30 });
}

export const heading = (page: Page) => page.getByRole('heading', { level: 1 }).innerText();

/** Starts a sign-in at the relying party. */
export async function startSignIn(h: Harness, page: Page, extra: Record<string, string> = {}): Promise<AuthorizationRequest> {
  const request = await authorizationRequest(h.rp, 'openid email', extra);
  await page.goto(request.url);
  return request;
}

export async function enterPassword(page: Page, user: { email: string; password: string }): Promise<void> {
  await page.fill('#email', user.email);
  await page.fill('#password', user.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Waits for the relying party's callback and redeems its code: the ID token's claims. */
export async function idTokenAt(h: Harness, page: Page, request: AuthorizationRequest) {
  await page.waitForURL((url) => url.toString().startsWith(h.callback));
  const tokens = await exchangeCode(h.rp, request, page.url());
  return tokens.claims()!;
}

/** Signs in to /account with the password (a first-party client of the provider's own). */
export async function openAccount(h: Harness, page: Page, user: { email: string; password: string }): Promise<void> {
  await page.goto(`${h.idp.issuer}/account`);
  if ((await heading(page)) === 'Sign in') await enterPassword(page, user);
  expect(await heading(page)).toBe('Your account');
}

/** On /account: Set up authenticator app, the first code, Turn on. The secret and the recovery codes. */
export async function turnOnTotp(page: Page, password: string): Promise<{ secret: string; recoveryCodes: string[] }> {
  await page.fill('#totp_setup_password', password);
  await page.getByRole('button', { name: 'Set up authenticator app' }).click();
  expect(await heading(page)).toBe('Set up your authenticator app');
  const secret = (await page.locator('#totp-secret').innerText()).trim();
  expect(secret).toMatch(/^[A-Z2-7]{16,}$/);
  // The QR code is drawn by the server: an SVG data URL, no request anywhere.
  expect(await page.locator('img.qr-code').getAttribute('src')).toMatch(/^data:image\/svg\+xml;base64,/);
  await page.fill('input[name="code"]', await codeFor(secret));
  await page.getByRole('button', { name: 'Turn on' }).click();
  expect(await heading(page)).toBe('Two-factor authentication is on');
  const recoveryCodes = (await page.locator('#recovery-codes').innerText()).split('\n').map((line) => line.trim()).filter(Boolean);
  expect(recoveryCodes).toHaveLength(10);
  return { secret, recoveryCodes };
}

/** A CDP virtual authenticator (a platform authenticator with resident keys and user verification) for this page. */
export async function virtualAuthenticator(context: BrowserContext, page: Page): Promise<{ cdp: CDPSession; authenticatorId: string }> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  return { cdp, authenticatorId };
}

export const auditOf = (h: Harness, userId: string) =>
  h.idp.server.database.db.selectFrom('audit_events').select(['event_type', 'outcome', 'details']).where('user_id', '=', userId).orderBy('id').execute();
