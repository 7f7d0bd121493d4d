import bcrypt from 'bcrypt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, relyingParty, type RelyingParty } from '../../../test/support/relying-party.ts';
import { SERVER_SETUPS, startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'http://localhost:3000/cb';
const bob = { email: 'bob@example.com', password: 'purple monkey dishwasher' };

describe.each(SERVER_SETUPS)('login page (%s)', (kind) => {
  let idp: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    // Each attempt comes from its own address (through a trusted proxy), so the per-IP sign-in limit
    // (tested in idp/test/security/rate-limits.test.ts) does not interfere with these checks.
    idp = await startTestServer(kind, { TRUST_PROXY: 'loopback' });
    await idp.createUser(bob);
    await idp.createUser({ email: 'gone@example.com', password: 'this account is disabled' });
    const { createUserQueries } = await import('../../src/users/queries.ts');
    const users = createUserQueries(idp.server.database.db);
    const gone = await users.findByEmail('gone@example.com');
    await users.disable(gone!.id);
    rp = await relyingParty(idp.issuer, await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK], first_party: true }));
  });
  afterAll(async () => {
    await idp?.stop();
  });

  async function loginPage(browser = new Browser()) {
    const request = await authorizationRequest(rp, 'openid');
    const page = await browser.follow(request.url);
    return { browser, page };
  }

  let addresses = 0;
  async function submit(email: string, password: string, csrf?: string) {
    const { browser, page } = await loginPage();
    const started = performance.now();
    addresses += 1;
    const response = await browser.request(formAction(page.body, idp.issuer), {
      form: { _csrf: csrf ?? hiddenField(page.body, '_csrf'), email, password },
      headers: { 'x-forwarded-for': `203.0.113.${addresses}` },
    });
    return { response, ms: performance.now() - started, browser };
  }

  it('serves a login form with email, password, a CSRF token and Sign in as its first submit button', async () => {
    const { page } = await loginPage();
    expect(page.status).toBe(200);
    expect(page.body).toContain('name="email"');
    expect(page.body).toContain('name="password"');
    expect(hiddenField(page.body, '_csrf').length).toBeGreaterThan(10);
    const firstButton = /<button[^>]*>([^<]*)<\/button>/.exec(page.body);
    expect(firstButton?.[0]).toContain('type="submit"');
    expect(firstButton?.[1]).toBe('Sign in');
    expect(page.body).toContain('<meta name="viewport"');
    expect(page.body).not.toMatch(/(src|href)="https?:\/\//);
    expect(page.headers.get('cache-control')).toContain('no-store');
  });

  it('gives the same answer, in about the same time, for an unknown email and a wrong password', async () => {
    const wrongPassword = await submit(bob.email, 'not the right password');
    const unknownUser = await submit('nobody@example.com', 'not the right password');
    for (const { response } of [wrongPassword, unknownUser]) {
      expect(response.status).toBe(401);
      expect(response.body).toContain('Email or password is incorrect');
    }
    // Form actions and the Create account and Forgot password? links carry the interaction's uid.
    const strip = (body: string) =>
      body.replace(/(value|data-options|nonce)="[^"]*"/g, '').replace(/(action|href)="\/interaction\/[^"]*"/g, '').replace(/interaction=[A-Za-z0-9_-]+/g, '');
    expect(strip(wrongPassword.response.body)).toBe(strip(unknownUser.response.body));
    // Both paths run bcrypt at cost 12 (the unknown user against a dummy hash). Skipping it would make
    // the unknown-user answer ~50x faster; samples alternate so machine load affects both alike.
    const samples: Record<string, number[]> = { known: [], unknown: [] };
    for (let i = 0; i < 5; i += 1) {
      samples['known']!.push((await submit(bob.email, 'not the right password')).ms);
      samples['unknown']!.push((await submit('nobody@example.com', 'not the right password')).ms);
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[2]!;
    const known = median(samples['known']!);
    const unknown = median(samples['unknown']!);
    expect(unknown, `unknown ${unknown} ms vs known ${known} ms`).toBeGreaterThan(known * 0.3);
    expect(known, `known ${known} ms vs unknown ${unknown} ms`).toBeGreaterThan(unknown * 0.3);
  });

  it('signs in with the right password and never for a disabled user', async () => {
    const ok = await submit(bob.email, bob.password);
    expect(ok.response.status).toBe(303);
    expect(ok.response.location).toMatch(/\/auth\//);
    const disabled = await submit('gone@example.com', 'this account is disabled');
    expect(disabled.response.status).toBe(401);
    expect(disabled.response.body).toContain('disabled');
    const disabledWrong = await submit('gone@example.com', 'wrong password here');
    expect(disabledWrong.response.body).toContain('Email or password is incorrect');
  });

  it('re-hashes a password stored at a lower bcrypt cost when its owner signs in', async () => {
    const { createUserQueries } = await import('../../src/users/queries.ts');
    const { bcryptCost } = await import('../../src/users/passwords.ts');
    const users = createUserQueries(idp.server.database.db);
    const weak = { email: 'weak@example.com', password: 'hashed long ago at cost ten' };
    const { id } = await idp.createUser(weak);
    await users.update(id, { passwordHash: await bcrypt.hash(weak.password, 10) });

    expect((await submit(weak.email, 'not the password at all')).response.status).toBe(401);
    expect(bcryptCost((await users.findById(id))!.password_hash!)).toBe(10);
    expect((await submit(weak.email, weak.password)).response.status).toBe(303);
    const rehashed = (await users.findById(id))!.password_hash!;
    expect(bcryptCost(rehashed)).toBe(12);
    expect(await bcrypt.compare(weak.password, rehashed)).toBe(true);
    // And the new hash signs in as well.
    expect((await submit(weak.email, weak.password)).response.status).toBe(303);
  });

  it('refuses a login form without a valid CSRF token (403, no session)', async () => {
    for (const csrf of ['', 'forged-token-value']) {
      const { response, browser } = await submit(bob.email, bob.password, csrf);
      expect(response.status).toBe(403);
      expect(response.location).toBeUndefined();
      const cookies = await browser.jar.getCookies(idp.issuer);
      expect(cookies.map((cookie) => cookie.key)).not.toContain('_session');
    }
    // A token from another browser's cookie does not fit this browser's secret.
    const other = await loginPage();
    const { response } = await submit(bob.email, bob.password, hiddenField(other.page.body, '_csrf'));
    expect(response.status).toBe(403);
  });
});
