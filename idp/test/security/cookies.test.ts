import { createHmac, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { freePort } from '../../../test/support/processes.ts';
import { authorizationRequest, relyingParty, signIn } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { createTestStore, type TestStore } from '../../../test/support/stores.ts';

/**
 * The cookies the provider sets (session, interaction, resume) and ours (CSRF): HttpOnly, SameSite=Lax,
 * signed with COOKIE_KEYS, and Secure in production behind a TLS-terminating proxy that TRUST_PROXY
 * names. Keys rotate: a session signed with an older key still works while that key is listed.
 */

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const PUBLIC_ISSUER = 'https://id.jobswipe.test';
const CALLBACK = 'https://rp.example/callback';

interface SetCookie {
  name: string;
  value: string;
  attributes: Map<string, string>;
  raw: string;
}

function parseSetCookie(raw: string): SetCookie {
  const [pair = '', ...parts] = raw.split(';').map((part) => part.trim());
  const equals = pair.indexOf('=');
  const attributes = new Map<string, string>();
  for (const part of parts) {
    const [name = '', ...value] = part.split('=');
    attributes.set(name.toLowerCase(), value.join('='));
  }
  return { name: pair.slice(0, equals), value: pair.slice(equals + 1), attributes, raw };
}

/** What Koa's cookies (keygrip) put in NAME.sig: HMAC-SHA1 of "NAME=VALUE", base64url. */
const signature = (key: string, name: string, value: string) => createHmac('sha1', key).update(`${name}=${value}`).digest('base64url');

/**
 * A browser on the public https issuer whose requests reach the server through a "TLS-terminating
 * proxy" on loopback: this test, sending the request over http with X-Forwarded-Proto: https. Its
 * cookie jar works on the https URLs, so Secure cookies are sent back as a browser would.
 */
class BehindTlsProxy extends Browser {
  readonly setCookies: SetCookie[] = [];
  readonly statuses: number[] = [];

  private readonly localBase: string;

  constructor(localBase: string) {
    super();
    this.localBase = localBase;
  }

  protected override async send(url: string, init: RequestInit): Promise<Response> {
    const target = new URL(url);
    if (target.origin !== PUBLIC_ISSUER) throw new Error(`not the provider: ${url}`);
    const headers = new Headers(init.headers);
    headers.set('x-forwarded-proto', 'https');
    headers.set('x-forwarded-host', target.host);
    const response = await fetch(`${this.localBase}${target.pathname}${target.search}`, { ...init, headers });
    this.statuses.push(response.status);
    for (const raw of response.headers.getSetCookie()) this.setCookies.push(parseSetCookie(raw));
    return response;
  }
}

/** An authorization request for the public issuer (built by hand: discovery would name the https issuer). */
function authorizeUrl(clientId: string): string {
  const params = new URLSearchParams({
    client_id: clientId,
    response_type: 'code',
    scope: 'openid',
    redirect_uri: CALLBACK,
    state: randomBytes(8).toString('hex'),
    // Any S256 challenge: the code is never redeemed here.
    code_challenge: 'J7A8pirToHwIecThbRMwHBpKXgoIBkYdlg2TPmuCFRY',
    code_challenge_method: 'S256',
  });
  return `${PUBLIC_ISSUER}/auth?${params.toString()}`;
}

const PROVIDER_AND_CSRF_COOKIES = ['_interaction', '_interaction_resume', '_session', 'jobswipe.csrf'];

async function productionServer(env: Record<string, string>) {
  const cookieKey = randomBytes(32).toString('base64url');
  const idp = await startTestServer('postgres', {
    NODE_ENV: 'production',
    ISSUER: PUBLIC_ISSUER,
    COOKIE_KEYS: cookieKey,
    KEYSTORE_KEK: randomBytes(32).toString('base64'),
    // Nothing is mailed at start-up: production only requires the setting.
    SMTP_URL: 'smtp://127.0.0.1:2525',
    ...env,
  });
  expect(idp.server.config.production).toBe(true);
  await idp.createUser(alice);
  await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK], first_party: true });
  return { idp, cookieKey };
}

describe('cookies in production behind a TLS-terminating proxy (TRUST_PROXY=loopback)', () => {
  let idp: TestServer;
  let cookieKey: string;

  beforeAll(async () => {
    ({ idp, cookieKey } = await productionServer({ TRUST_PROXY: 'loopback' }));
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('every cookie of a sign-in is Secure, HttpOnly, SameSite=Lax and signed with the newest key', async () => {
    const browser = new BehindTlsProxy(idp.issuer);
    const done = await signIn(browser, PUBLIC_ISSUER, { url: authorizeUrl('rp'), verifier: '', state: '', nonce: '' }, CALLBACK, alice);
    expect(done.status).toBe(303);
    expect(new URL(done.location ?? '').searchParams.get('code')).toEqual(expect.any(String));
    expect(browser.statuses.every((status) => status < 400)).toBe(true);

    const names = new Set(browser.setCookies.map((cookie) => cookie.name));
    for (const name of PROVIDER_AND_CSRF_COOKIES) {
      expect(names, name).toContain(name);
      expect(names, `${name}.sig`).toContain(`${name}.sig`);
    }
    for (const cookie of browser.setCookies) {
      expect(cookie.attributes.has('secure'), cookie.raw).toBe(true);
      expect(cookie.attributes.has('httponly'), cookie.raw).toBe(true);
      expect(cookie.attributes.get('samesite'), cookie.raw).toBe('lax');
    }
    // Each value is signed under COOKIE_KEYS[0]: the .sig set with it is its HMAC.
    for (const name of PROVIDER_AND_CSRF_COOKIES) {
      const set = browser.setCookies.filter((cookie) => cookie.name === name && cookie.value !== '');
      expect(set.length, name).toBeGreaterThan(0);
      for (const cookie of set) {
        const sig = browser.setCookies.find((other) => other.name === `${name}.sig` && other.value === signature(cookieKey, name, cookie.value));
        expect(sig, `${name}.sig for ${cookie.value}`).toBeDefined();
      }
    }
  });
});

describe('cookies in production when the peer is not a trusted proxy (TRUST_PROXY names another address)', () => {
  let idp: TestServer;

  beforeAll(async () => {
    ({ idp } = await productionServer({ TRUST_PROXY: '192.0.2.1' }));
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('ignores X-Forwarded-Proto: the connection is http, so no cookie claims to be Secure', async () => {
    const browser = new BehindTlsProxy(idp.issuer);
    const login = await browser.follow(authorizeUrl('rp'));
    expect(login.status).toBe(200);
    expect(login.body).toContain('name="password"');
    const names = new Set(browser.setCookies.map((cookie) => cookie.name));
    for (const name of ['_interaction', '_interaction_resume', 'jobswipe.csrf']) expect(names).toContain(name);
    for (const cookie of browser.setCookies) {
      expect(cookie.attributes.has('secure'), cookie.raw).toBe(false);
      expect(cookie.attributes.has('httponly'), cookie.raw).toBe(true);
      expect(cookie.attributes.get('samesite'), cookie.raw).toBe('lax');
    }
  });
});

describe('COOKIE_KEYS rotation across restarts (postgres)', () => {
  const k1 = `k1-${randomBytes(24).toString('base64url')}`;
  const k2 = `k2-${randomBytes(24).toString('base64url')}`;
  let store: TestStore;
  let port: string;
  let running: TestServer | undefined;

  const start = async (keys: string[]) => {
    await running?.stop();
    running = await startTestServer('postgres', { PORT: port, COOKIE_KEYS: keys.join(',') }, { store });
    return running;
  };
  const sessionCookies = async (browser: Browser, issuer: string) =>
    Object.fromEntries((await browser.jar.getCookies(`${issuer}/`)).filter((cookie) => cookie.key.startsWith('_session')).map((cookie) => [cookie.key, cookie.value]));

  beforeAll(async () => {
    store = await createTestStore('postgres');
    port = String(await freePort());
  });
  afterAll(async () => {
    await running?.stop();
    await store?.drop();
  });

  it('a session signed with k1 survives a restart with [k2, k1]; with [k2] alone it is not accepted and the user signs in again', async () => {
    // 1. Signed in under [k1].
    let idp = await start([k1]);
    await idp.createUser(alice);
    const client = await idp.registerClient({ client_id: 'rp', redirect_uris: ['http://localhost:3000/cb'], first_party: true });
    const rp = await relyingParty(idp.issuer, client);
    const browser = new Browser();
    const first = await signIn(browser, idp.issuer, await authorizationRequest(rp, 'openid'), rp.redirectUri, alice);
    expect(first.location).toMatch(/^http:\/\/localhost:3000\/cb\?code=/);
    const underK1 = await sessionCookies(browser, idp.issuer);
    expect(underK1['_session.sig']).toBe(signature(k1, '_session', underK1['_session'] ?? ''));
    // A second copy of the k1-signed cookies, kept for step 3.
    const keptBrowser = new Browser();
    for (const cookie of await browser.jar.getCookies(`${idp.issuer}/`)) await keptBrowser.jar.setCookie(cookie, `${idp.issuer}/`);

    // 2. Restarted with a new key first: the k1 signature still verifies, no sign-in needed.
    idp = await start([k2, k1]);
    const again = await signIn(browser, idp.issuer, await authorizationRequest(rp, 'openid'), rp.redirectUri);
    expect(again.status).toBe(303);
    expect(again.location).toMatch(/^http:\/\/localhost:3000\/cb\?code=/);

    // 3. Restarted with k1 dropped: the k1-signed session cookie is refused, the login page is shown (not an error).
    idp = await start([k2]);
    const request = await authorizationRequest(rp, 'openid');
    const login = await keptBrowser.follow(request.url);
    expect(login.status).toBe(200);
    expect(login.body).toContain('name="password"');
    const signedInAgain = await signIn(keptBrowser, idp.issuer, request, rp.redirectUri, alice);
    expect(signedInAgain.location).toMatch(/^http:\/\/localhost:3000\/cb\?code=/);
    const underK2 = await sessionCookies(keptBrowser, idp.issuer);
    expect(underK2['_session.sig']).toBe(signature(k2, '_session', underK2['_session'] ?? ''));
    expect(idp.logs.join('')).not.toMatch(/"status":5\d\d/);
  }, 60_000);
});
