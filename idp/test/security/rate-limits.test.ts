import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, relyingParty, type RelyingParty } from '../../../test/support/relying-party.ts';
import { SERVER_SETUPS, startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'http://localhost:3000/cb';
const carol = { email: 'carol@example.com', password: 'a long and good passphrase' };
const dave = { email: 'dave@example.com', password: 'another long passphrase' };
/** Anyone can have an account of their own (SIGNUP=open). */
const mallory = { email: 'mallory@example.com', password: 'my very own passphrase' };

async function setUp(env: Record<string, string>, setup: (typeof SERVER_SETUPS)[number] = 'embedded') {
  const idp = await startTestServer(setup, env);
  await idp.createUser(carol);
  await idp.createUser(dave);
  await idp.createUser(mallory);
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

  it('a sign-in of one\'s own does not clear the address\'s failures: rounds of four guesses and an own sign-in are refused at the 6th guess', async () => {
    const ip = '198.51.100.3';
    const statuses: number[] = [];
    for (let round = 0; round < 3; round += 1) {
      for (let i = 0; i < 4; i += 1) statuses.push((await attempt(idp, rp, wrong(dave), ip)).status);
      statuses.push((await attempt(idp, rp, mallory, ip)).status);
    }
    const guesses = statuses.filter((_, i) => i % 5 !== 4);
    expect(guesses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    expect(guesses[5]).toBe(429);
    expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 303]);
  });

  it('evaluates at most 5 of 20 parallel wrong passwords from one address; the rest get 429', async () => {
    const ip = '198.51.100.4';
    const browsers = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const browser = new Browser();
        const page = await browser.follow((await authorizationRequest(rp, 'openid')).url);
        return { browser, page };
      }),
    );
    const statuses = await Promise.all(
      browsers.map(({ browser, page }) =>
        browser
          .request(formAction(page.body, idp.issuer), { form: { _csrf: hiddenField(page.body, '_csrf'), ...wrong({ email: 'parallel@example.com' }) }, headers: { 'x-forwarded-for': ip } })
          .then((response) => response.status),
      ),
    );
    const audited = await idp.server.database.db.selectFrom('audit_events').select(['event_type']).where('ip', '=', ip).execute();
    const failures = audited.filter((row) => row.event_type === 'login.failure').length;
    expect(failures).toBeLessThanOrEqual(5);
    expect(statuses.filter((status) => status === 401)).toHaveLength(failures);
    expect(statuses.filter((status) => status === 429)).toHaveLength(20 - failures);
    expect(audited.filter((row) => row.event_type === 'login.rate_limited')).toHaveLength(20 - failures);
  });

  it('counts an IPv6 client by its /64, and an IPv4-mapped address as its IPv4 address', async () => {
    // Guesses at accounts that do not exist, so that no account limit is reached here.
    const guess = (i: number) => wrong({ email: `guess-${i}@example.com` });
    for (let i = 1; i <= 5; i += 1) expect((await attempt(idp, rp, guess(i), `2001:db8:6:4::${i}`)).status, `attempt ${i}`).toBe(401);
    expect((await attempt(idp, rp, guess(6), '2001:db8:6:4:ffff::1')).status).toBe(429);
    expect((await attempt(idp, rp, carol, '2001:db8:6:5::1')).status).toBe(303);

    for (let i = 1; i <= 3; i += 1) expect((await attempt(idp, rp, guess(i), '::ffff:198.51.100.66')).status, `attempt ${i}`).toBe(401);
    for (let i = 4; i <= 5; i += 1) expect((await attempt(idp, rp, guess(i), '198.51.100.66')).status, `attempt ${i}`).toBe(401);
    expect((await attempt(idp, rp, carol, '::ffff:198.51.100.66')).status).toBe(429);
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
