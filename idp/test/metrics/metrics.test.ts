import { Writable } from 'node:stream';
import pg from 'pg';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backchannelReceiver, type BackchannelReceiver } from '../../../test/support/backchannel.ts';
import { AddressedBrowser, Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, oauthError, registeredRelyingParty, signIn, webAppClient, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startServer } from '@jobswipe/idp';
import { freePort, runToExit } from '../../../test/support/processes.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';
import { labelValues, promtool, sample, scrape } from './scrape.ts';

/*
 * GET /metrics on its own listener, against a real server on Postgres with Redis: after a known
 * number of sign-ins, token requests and refreshes, each counter moved by exactly that much; the
 * route label is the pattern, never the path; promtool accepts the scrape.
 */

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

describe('metrics (postgres+redis)', () => {
  let idp: TestServer;
  let web: RelyingParty;
  let logout: BackchannelReceiver;
  let metricsUrl: string;
  let aliceId: string;

  beforeAll(async () => {
    logout = await backchannelReceiver();
    // No grace period: the second use of a rotated refresh token is a reuse at once.
    // Keys polled every second and expiries checked often: the stuck rotation shows, and clears, quickly.
    idp = await startTestServer('postgres+redis', { REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0', KEYSTORE_POLL_SECONDS: '1', TRUST_PROXY: 'loopback' }, { start: { expiryCheckMs: 200 } });
    aliceId = (await idp.createUser(alice)).id;
    web = await registeredRelyingParty(idp, webAppClient({ backchannel_logout_uri: logout.url }));
    metricsUrl = idp.server.metricsUrl!;
  });

  afterAll(async () => {
    await idp?.stop();
    logout?.server.close();
  });

  async function signedIn(browser = new Browser()) {
    const request = await authorizationRequest(web, 'openid email offline_access');
    const callback = await signIn(browser, idp.issuer, request, web.redirectUri, alice);
    expect(callback.status).toBe(303);
    return exchangeCode(web, request, callback.location!);
  }

  /** One wrong password on the login page, from an address of its own (the others keep signing in); the status of the answer. */
  async function wrongPassword(): Promise<number> {
    const browser = new AddressedBrowser('198.18.200.1');
    const login = await browser.follow((await authorizationRequest(web, 'openid')).url);
    const answer = await browser.request(formAction(login.body, idp.issuer), {
      method: 'POST',
      form: { _csrf: hiddenField(login.body, '_csrf'), email: alice.email, password: 'not the password at all' },
    });
    return answer.status;
  }

  it('listens on METRICS_PORT, not the public port, which answers /metrics with 404', async () => {
    expect(new URL(metricsUrl).port).not.toBe(String(idp.server.port));
    expect(new URL(metricsUrl).hostname).toBe('127.0.0.1');
    expect((await fetch(`${idp.issuer}/metrics`)).status).toBe(404);
    expect((await fetch(new URL('/', metricsUrl))).status).toBe(404);
  });

  it('a metrics port in use stops the start, naming METRICS_PORT, before the public port listens', async () => {
    const port = await freePort();
    const taken = { host: '127.0.0.1', port: Number(new URL(metricsUrl).port) };
    await expect(startServer({ ...idp.server.config, port, metrics: taken }, { logDestination: new Writable({ write: (_chunk, _encoding, done) => done() }) })).rejects.toThrow(
      /cannot listen for metrics on 127\.0\.0\.1:\d+ \(METRICS_HOST, METRICS_PORT\): EADDRINUSE/,
    );
    expect(await fetch(`http://127.0.0.1:${port}/healthz`).then((response) => response.status, () => 'refused')).toBe('refused');
  });

  it('counts sign-ins, tokens, refreshes, reuse, revocations, limits, deliveries and usage exactly', async () => {
    const before = await scrape(metricsUrl);
    const moved = (after: string, name: string, labels: Record<string, string> = {}) => (sample(after, name, labels) ?? 0) - (sample(before, name, labels) ?? 0);

    // 2 sign-ins, 2 code exchanges; 1 refresh; the rotated refresh token again (reuse); 1 revocation.
    const first = await signedIn();
    const second = await signedIn();
    const refreshed = await oidc.refreshTokenGrant(web.config, first.refresh_token!);
    expect(await oauthError(oidc.refreshTokenGrant(web.config, first.refresh_token!))).toBe('invalid_grant');
    await oidc.tokenRevocation(web.config, second.refresh_token!);
    expect(refreshed.access_token).toBeTruthy();
    // 5 wrong passwords fill the per-address limit; the 6th attempt is refused by it.
    for (let attempt = 0; attempt < 5; attempt += 1) expect(await wrongPassword()).toBe(401);
    expect(await wrongPassword()).toBe(429);
    // A session ended by an administrator: one logout token to the web app's back-channel endpoint.
    const ended = await idp.server.libraries.users.endSessions({ id: aliceId, email: alice.email } as never);
    expect(ended.sessionsEnded).toBeGreaterThan(0);
    const recorded = await idp.server.libraries.plans.record({ clientId: 'web', userId: aliceId, meter: 'applications', quantity: 3, idempotencyKey: 'metrics-1' });
    expect(recorded.outcome).toBe('recorded');
    await idp.server.libraries.plans.record({ clientId: 'web', userId: aliceId, meter: 'applications', quantity: 3, idempotencyKey: 'metrics-1' });
    await expect.poll(() => logout.tokens.length, { timeout: 5_000 }).toBeGreaterThan(0);

    const after = await scrape(metricsUrl);
    expect(moved(after, 'jobswipe_sign_ins_total', { outcome: 'success' })).toBe(2);
    expect(moved(after, 'jobswipe_sign_ins_total', { outcome: 'failure' })).toBe(5);
    expect(moved(after, 'jobswipe_sign_ins_total', { outcome: 'rate_limited' })).toBe(1);
    expect(moved(after, 'jobswipe_rate_limited_total', { limit: 'login-ip' })).toBe(1);
    expect(moved(after, 'jobswipe_tokens_issued_total', { grant_type: 'authorization_code' })).toBe(2);
    expect(moved(after, 'jobswipe_tokens_issued_total', { grant_type: 'refresh_token' })).toBe(1);
    expect(moved(after, 'jobswipe_token_reuse_detected_total')).toBe(1);
    expect(moved(after, 'jobswipe_tokens_revoked_total')).toBe(1);
    expect(moved(after, 'jobswipe_backchannel_logout_deliveries_total', { outcome: 'delivered' })).toBe(logout.tokens.length);
    expect(moved(after, 'jobswipe_usage_recorded_total', { meter: 'applications' })).toBe(3);
    // 2 code exchanges and 1 refresh answered 200, the reuse 400; 1 revocation.
    expect(moved(after, 'jobswipe_http_requests_total', { route: '/token', method: 'POST', status: '200' })).toBe(3);
    expect(moved(after, 'jobswipe_http_requests_total', { route: '/token', method: 'POST', status: '400' })).toBe(1);
    expect(moved(after, 'jobswipe_http_requests_total', { route: '/token/revocation', method: 'POST', status: '200' })).toBe(1);
    expect(moved(after, 'jobswipe_http_request_duration_seconds_count', { route: '/token' })).toBe(4);
    expect(moved(after, 'jobswipe_store_query_duration_seconds_count', { store: 'database' })).toBeGreaterThan(0);
    expect(moved(after, 'jobswipe_store_query_duration_seconds_count', { store: 'redis' })).toBeGreaterThan(0);
  });

  it('labels requests by route pattern, never by raw path', async () => {
    const browser = new Browser();
    const login = await browser.follow((await authorizationRequest(web, 'openid')).url);
    const uid = /\/interaction\/([^/]+)/.exec(formAction(login.body, idp.issuer))![1]!;
    expect((await fetch(`${idp.issuer}/no/such/page-7f3a`)).status).toBe(404);
    expect((await fetch(`${idp.issuer}/DEVICE`)).status).toBe(200);
    const text = await scrape(metricsUrl);
    const routes = labelValues(text, 'jobswipe_http_requests_total', 'route');
    expect(routes).toEqual(expect.arrayContaining(['/auth', '/interaction/:uid', '/token', 'unmatched', '/device', '/.well-known/openid-configuration']));
    expect(routes.join(' ')).not.toContain(uid);
    expect(routes.join(' ')).not.toContain('page-7f3a');
    expect(routes.join(' ')).not.toContain('DEVICE');
  });

  it('reads the gauges from the stores', async () => {
    const text = await scrape(metricsUrl);
    expect(sample(text, 'jobswipe_store_up', { store: 'database' })).toBe(1);
    expect(sample(text, 'jobswipe_store_up', { store: 'redis' })).toBe(1);
    expect(sample(text, 'jobswipe_signing_key_age_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'jobswipe_signing_key_next_rotation_seconds')).toBeGreaterThan(29 * 24 * 60 * 60);
    expect(sample(text, 'jobswipe_refresh_tokens_expiring', { within: '24h' })).toBe(0);
    expect(sample(text, 'jobswipe_refresh_tokens_expiring', { within: '7d' })).toBe(0);
    expect(sample(text, 'jobswipe_audit_seal_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'jobswipe_active_sessions')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'jobswipe_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sample(text, 'jobswipe_nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('promtool check metrics accepts the scrape', async () => {
    const result = await promtool(['check', 'metrics'], await scrape(metricsUrl));
    expect(result.output).toBe('');
    expect(result.code).toBe(0);
  });

  /** A statement on the test database as its owner (the server's own role may not change these rows). */
  async function asOwner<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    if (idp.store.kind !== 'postgres') throw new Error('expected Postgres');
    const client = new pg.Client({ connectionString: idp.store.url });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  it('idp tokens expiring --within 7d: one line per client with the count and the earliest expiry', async () => {
    const jobs = await registeredRelyingParty(idp, { client_id: 'jobs', client_name: 'Jobs', redirect_uris: ['http://localhost:3001/callback'], first_party: true });
    const tokensOf = async (rp: RelyingParty) => {
      const request = await authorizationRequest(rp, 'openid offline_access');
      const callback = await signIn(new Browser(), idp.issuer, request, rp.redirectUri, alice);
      return exchangeCode(rp, request, callback.location!);
    };
    await tokensOf(web);
    await tokensOf(web);
    await tokensOf(jobs);
    // One of the web app's tokens was issued 28 days ago: it expires in 2 days.
    const soon = await asOwner(async (client) => {
      const { rows } = await client.query<{ expires_at: Date }>(
        `update oidc_models set expires_at = date_trunc('second', now()) + interval '2 days'
          where model = 'RefreshToken' and consumed_at is null and payload->>'clientId' = 'web'
            and id = (select id from oidc_models where model = 'RefreshToken' and consumed_at is null and payload->>'clientId' = 'web' limit 1)
          returning expires_at`,
      );
      return rows[0]!.expires_at;
    });
    const env = { ...storeEnvironment(idp.store), LOG_LEVEL: 'warn' };
    const idpCommand = (within: string) => runToExit('idp/src/cli/main.ts', ['tokens', 'expiring', '--within', within], env, 45_000);
    const [week, month] = await Promise.all([idpCommand('7d'), idpCommand('31d')]);
    expect(week.err).toEqual([]);
    expect(week.code).toBe(0);
    expect(week.out).toEqual([`web  expiring=1  earliest=${soon.toISOString().replace('.000Z', 'Z')}`]);
    expect(month.out.map((line) => line.replace(/ {2}earliest=.*$/, ''))).toEqual(['jobs  expiring=1', 'web  expiring=2']);

    const text = await scrape(metricsUrl);
    expect(sample(text, 'jobswipe_refresh_tokens_expiring', { within: '7d' })).toBe(1);
    expect(sample(text, 'jobswipe_refresh_tokens_expiring', { within: '24h' })).toBe(0);
  }, 60_000);

  it('warns in the log and in metrics when a client secret nears its expiry', async () => {
    const expiresAt = Math.floor(Date.now() / 1000) + 2 * 24 * 60 * 60;
    await idp.registerClient({ client_id: 'expiring-service', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], client_secret_expires_at: expiresAt });
    await expect.poll(async () => sample(await scrape(metricsUrl), 'jobswipe_client_secrets_expiring', { within: '7d' }), { timeout: 5_000 }).toBe(1);
    expect(sample(await scrape(metricsUrl), 'jobswipe_client_secrets_expiring', { within: '24h' })).toBe(0);
    await expect.poll(() => idp.logs.some((line) => line.includes('"client_secret.expiring"') && line.includes('"expiring-service"')), { timeout: 5_000 }).toBe(true);
  });

  it('warns in the log and in metrics while the signing key rotation is stuck, and stops once it runs again', async () => {
    // Another process holds the keystore lock (a stuck rotation) while the current key is past its time.
    if (idp.store.kind !== 'postgres') throw new Error('expected Postgres');
    const lock = new pg.Client({ connectionString: idp.store.url });
    await lock.connect();
    try {
      await lock.query(`select pg_advisory_lock(hashtext('jobswipe.keystore'))`);
      await lock.query(`update signing_keys set activates_at = now() - interval '31 days' where state = 'current'`);
      await expect.poll(async () => sample(await scrape(metricsUrl), 'jobswipe_signing_key_next_rotation_seconds') ?? 0, { timeout: 5_000 }).toBeLessThan(-23 * 60 * 60);
      expect(sample(await scrape(metricsUrl), 'jobswipe_signing_key_age_seconds')).toBeGreaterThan(31 * 24 * 60 * 60 - 60);
      await expect.poll(() => idp.logs.some((line) => line.includes('"signing_key.rotation_overdue"') && line.includes('"level":40')), { timeout: 5_000 }).toBe(true);
    } finally {
      await lock.query(`select pg_advisory_unlock(hashtext('jobswipe.keystore'))`).catch(() => {});
      await lock.end();
    }
    // Released: the next key is created at once and takes over after its prepublication window.
    await expect.poll(async () => sample(await scrape(metricsUrl), 'jobswipe_signing_key_next_rotation_seconds') ?? 0, { timeout: 10_000 }).toBeGreaterThan(0);
  });
});
