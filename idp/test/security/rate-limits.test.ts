import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, relyingParty, type RelyingParty } from '../../../test/support/relying-party.ts';
import { SERVER_SETUPS, startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'http://localhost:3000/cb';
const carol = { email: 'carol@example.com', password: 'a long and good passphrase' };
const dave = { email: 'dave@example.com', password: 'another long passphrase' };

async function setUp(env: Record<string, string>, setup: (typeof SERVER_SETUPS)[number] = 'embedded') {
  const idp = await startTestServer(setup, env);
  await idp.createUser(carol);
  await idp.createUser(dave);
  const rp = await relyingParty(idp.issuer, await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK], first_party: true }));
  return { idp, rp };
}

/** One sign-in attempt on a fresh login page, optionally through a proxy that names the client's address. */
async function attempt(idp: TestServer, rp: RelyingParty, credentials: { email: string; password: string }, forwardedFor?: string) {
  const browser = new Browser();
  const request = await authorizationRequest(rp, 'openid');
  const page = await browser.follow(request.url);
  return browser.request(formAction(page.body, idp.issuer), {
    form: { _csrf: hiddenField(page.body, '_csrf'), ...credentials },
    headers: forwardedFor ? { 'x-forwarded-for': forwardedFor } : {},
  });
}

const wrong = (user: { email: string }) => ({ email: user.email, password: 'definitely not it' });

// Counters in the database (embedded; plain Postgres uses the same store) and in Redis.
describe.each(['embedded', 'postgres+redis'] as const)('sign-in limits (%s)', (setup) => {
  let idp: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    ({ idp, rp } = await setUp({ TRUST_PROXY: 'loopback' }, setup));
  });
  afterAll(async () => {
    await idp?.stop();
  });

  it('refuses the 6th attempt from an IP after 5 failures: 429, Retry-After, a page saying when; other IPs are unaffected', async () => {
    for (let i = 1; i <= 5; i += 1) {
      expect((await attempt(idp, rp, wrong(carol), '198.51.100.1')).status, `attempt ${i}`).toBe(401);
    }
    const blocked = await attempt(idp, rp, carol, '198.51.100.1');
    expect(blocked.status).toBe(429);
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(14 * 60);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    expect(blocked.body).toContain('Try again in 15 minutes');
    expect(blocked.body).toContain('name="password"');
    // Blocked means not checked: the right password does not get through, and no session is made.
    expect(blocked.headers.get('location')).toBeNull();
    expect(idp.logs.join('')).toContain('"event":"login.rate_limited"');

    const elsewhere = await attempt(idp, rp, carol, '198.51.100.2');
    expect(elsewhere.status).toBe(303);
  });

  it('a successful sign-in clears the IP count', async () => {
    for (let i = 0; i < 4; i += 1) expect((await attempt(idp, rp, wrong(dave), '198.51.100.3')).status).toBe(401);
    expect((await attempt(idp, rp, dave, '198.51.100.3')).status).toBe(303);
    for (let i = 0; i < 5; i += 1) expect((await attempt(idp, rp, wrong(dave), '198.51.100.3')).status).toBe(401);
    expect((await attempt(idp, rp, dave, '198.51.100.3')).status).toBe(429);
  });
});

describe('sign-in limits per account and behind proxies', () => {
  it('counts an account across IPs: after 10 failures it is refused for a while, other accounts are not', async () => {
    const { idp, rp } = await setUp({ TRUST_PROXY: 'loopback' });
    try {
      for (let i = 1; i <= 10; i += 1) {
        expect((await attempt(idp, rp, wrong(carol), `192.0.2.${i}`)).status, `attempt ${i}`).toBe(401);
      }
      const blocked = await attempt(idp, rp, carol, '192.0.2.200');
      expect(blocked.status).toBe(429);
      expect(blocked.body).toContain('to this account');
      const retryAfter = Number(blocked.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(59 * 60);
      expect(retryAfter).toBeLessThanOrEqual(60 * 60);
      // The lock is on the account, not the address.
      expect((await attempt(idp, rp, dave, '192.0.2.200')).status).toBe(303);
    } finally {
      await idp.stop();
    }
  });

  it('ignores X-Forwarded-For unless the connection comes from a trusted proxy', async () => {
    const { idp, rp } = await setUp({});
    try {
      for (let i = 1; i <= 5; i += 1) {
        expect((await attempt(idp, rp, wrong(carol), `203.0.113.${i}`)).status, `attempt ${i}`).toBe(401);
      }
      // A new address in the header changes nothing: the limit is on the real peer, 127.0.0.1.
      expect((await attempt(idp, rp, carol, '203.0.113.99')).status).toBe(429);
    } finally {
      await idp.stop();
    }
  });
});
