import * as oidc from 'openid-client';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { STORE_KINDS } from '../../../test/support/stores.ts';
import type { AuditRow } from '../../src/audit/log.ts';
import { verifyChain } from '../../src/audit/verify.ts';
import { LIMITS } from '../../src/security/limits.ts';

const CALLBACK = 'https://partner.example/callback';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const WRONG_PASSWORD = 'not the password, surely';
const AGENT = 'AuditTest/1.0 (events.test.ts)';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A browser behind our trusted proxy: every request carries its own address and agent. */
class ProxiedBrowser extends Browser {
  readonly ip: string;

  constructor(ip: string) {
    super();
    this.ip = ip;
  }

  override request(url: string, init: Parameters<Browser['request']>[1] = {}) {
    return super.request(url, { ...init, headers: { 'user-agent': AGENT, 'x-forwarded-for': this.ip, ...init.headers } });
  }
}

describe.each(STORE_KINDS)('audit events (%s)', (kind) => {
  let idp: TestServer;
  let partner: RelyingParty;
  let aliceId: string;
  /** Every secret value a test used: none may appear in any audit row. */
  const secrets: string[] = [alice.password, WRONG_PASSWORD];
  let addresses = 0;
  const nextIp = () => `203.0.113.${(addresses += 1)}`;

  beforeAll(async () => {
    // The per-IP limit counts X-Forwarded-For addresses, and the audit rows record them. Without a
    // reuse grace period, presenting a rotated refresh token again is a reuse at once (refresh-races.test.ts
    // covers the grace period and its token.refresh_replayed).
    idp = await startTestServer(kind, { TRUST_PROXY: 'loopback', REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' });
    aliceId = (await idp.createUser(alice)).id;
    const client = await idp.registerClient({ client_id: 'partner', client_name: 'Partner', redirect_uris: [CALLBACK], post_logout_redirect_uris: ['https://partner.example/'] });
    secrets.push(String(client['client_secret']));
    partner = await relyingParty(idp.issuer, client);
  });

  afterAll(async () => {
    await idp?.stop();
  });

  async function rows(): Promise<AuditRow[]> {
    return idp.server.database.db.selectFrom('audit_events').selectAll().orderBy('id').execute();
  }

  /** The rows added while `action` ran. */
  async function recorded(action: () => Promise<void>): Promise<AuditRow[]> {
    const before = (await rows()).length;
    await action();
    return (await rows()).slice(before);
  }

  async function signedIn(scope = 'openid offline_access', browser = new ProxiedBrowser(nextIp())) {
    const request = await authorizationRequest(partner, scope);
    const callback = await signIn(browser, idp.issuer, request, partner.redirectUri, alice);
    expect(callback.status).toBe(303);
    const code = new URL(callback.location!).searchParams.get('code');
    if (code) secrets.push(code);
    const tokens = await exchangeCode(partner, request, callback.location!);
    secrets.push(tokens.access_token, tokens.id_token!, ...(tokens.refresh_token ? [tokens.refresh_token] : []));
    return { tokens, browser };
  }

  it('records the key created at first start', async () => {
    const [first] = await rows();
    expect(first).toMatchObject({ event_type: 'key.created', outcome: 'success', user_id: null, details: { by: 'server', state: 'current' } });
  });

  it('records a failed sign-in with the user id, client, address and agent, and the reason', async () => {
    for (const [email, reason, userId] of [
      [alice.email, 'wrong_password', () => aliceId],
      ['nobody@example.com', 'unknown_account', () => null],
    ] as const) {
      const browser = new ProxiedBrowser(nextIp());
      const page = await browser.follow((await authorizationRequest(partner, 'openid')).url);
      const added = await recorded(async () => {
        const response = await browser.request(new URL(/action="([^"]+)"/.exec(page.body)![1]!, idp.issuer).toString(), {
          form: { _csrf: hiddenField(page.body, '_csrf'), email, password: WRONG_PASSWORD },
        });
        expect(response.status).toBe(401);
      });
      expect(added).toEqual([
        expect.objectContaining({
          event_type: 'login.failure',
          outcome: 'failure',
          user_id: userId(),
          client_id: 'partner',
          ip: browser.ip,
          user_agent: AGENT,
          details: { reason },
        }),
      ]);
    }
  });

  it('records sign-in, consent, token issue, refresh, reuse and revocation, each with its session', async () => {
    const browser = new ProxiedBrowser(nextIp());
    let tokens!: Awaited<ReturnType<typeof signedIn>>['tokens'];
    const signInRows = await recorded(async () => {
      ({ tokens } = await signedIn('openid offline_access', browser));
    });
    expect(signInRows.map((row) => row.event_type)).toEqual(['login.success', 'consent.granted', 'token.issued']);
    const [login, consent, issued] = signInRows as [AuditRow, AuditRow, AuditRow];
    expect(login).toMatchObject({ outcome: 'success', user_id: aliceId, client_id: 'partner', ip: browser.ip, user_agent: AGENT, details: { amr: 'pwd' } });
    expect(consent).toMatchObject({ outcome: 'success', user_id: aliceId, client_id: 'partner', ip: browser.ip, details: { first_party: false, scope: 'openid offline_access' } });
    const sessionId = consent.session_id;
    expect(sessionId).toMatch(/^[A-Za-z0-9_-]{10,}$/);
    expect(issued).toMatchObject({ outcome: 'success', user_id: aliceId, client_id: 'partner', session_id: sessionId, details: { grant_type: 'authorization_code' } });
    expect(issued.details['grant_id']).toBe(consent.details['grant_id']);

    const refreshed = await recorded(async () => {
      const next = await oidc.refreshTokenGrant(partner.config, tokens.refresh_token!);
      secrets.push(next.access_token, next.refresh_token!);
    });
    expect(refreshed).toEqual([expect.objectContaining({ event_type: 'token.refreshed', outcome: 'success', user_id: aliceId, client_id: 'partner', session_id: sessionId })]);

    const reused = await recorded(async () => {
      await expect(oidc.refreshTokenGrant(partner.config, tokens.refresh_token!)).rejects.toThrow();
    });
    expect(reused).toEqual([
      expect.objectContaining({
        event_type: 'token.reuse_detected',
        outcome: 'failure',
        user_id: aliceId,
        client_id: 'partner',
        details: expect.objectContaining({ grant_type: 'refresh_token', grant_id: issued.details['grant_id'], grant_revoked: true }),
      }),
    ]);

    const other = await signedIn();
    const revoked = await recorded(() => oidc.tokenRevocation(partner.config, other.tokens.refresh_token!));
    expect(revoked).toEqual([
      expect.objectContaining({ event_type: 'token.revoked', outcome: 'success', user_id: aliceId, client_id: 'partner', details: expect.objectContaining({ kind: 'RefreshToken' }) }),
    ]);
    // A token of nobody's is answered 200 (RFC 7009) and revokes nothing: nothing is recorded.
    expect(await recorded(() => oidc.tokenRevocation(partner.config, 'not-a-token-at-all'))).toEqual([]);
  });

  it('records a refused consent', async () => {
    const browser = new ProxiedBrowser(nextIp());
    const request = await authorizationRequest(partner, 'openid email', { prompt: 'consent' });
    const added = await recorded(async () => {
      const page = await signIn(browser, idp.issuer, request, partner.redirectUri, alice, 'deny');
      expect(new URL(page.location!).searchParams.get('error')).toBe('access_denied');
    });
    expect(added.map((row) => row.event_type)).toEqual(['login.success', 'consent.denied']);
    expect(added[1]).toMatchObject({ outcome: 'failure', user_id: aliceId, client_id: 'partner', ip: browser.ip, details: { scope: 'openid email' } });
  });

  it('records an RP-initiated logout with the session it ended', async () => {
    const { tokens, browser } = await signedIn('openid');
    const issued = (await rows()).at(-1)!;
    const confirm = await browser.follow(oidc.buildEndSessionUrl(partner.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'https://partner.example/' }).toString());
    const action = /<form[^>]*action="([^"]+)"/.exec(confirm.body)![1]!;
    const added = await recorded(async () => {
      const done = await browser.follow(new URL(action, idp.issuer).toString(), (url) => url.startsWith('https://partner.example/'), {
        form: { xsrf: hiddenField(confirm.body, 'xsrf'), logout: 'yes' },
      });
      expect(done.status).toBe(303);
    });
    expect(added).toEqual([
      expect.objectContaining({
        event_type: 'logout.end_session',
        outcome: 'success',
        user_id: aliceId,
        session_id: issued.session_id,
        ip: browser.ip,
        user_agent: AGENT,
        details: { ended: 'session' },
      }),
    ]);
  });

  it('records an app revoked and a session signed out on /account', async () => {
    const { browser } = await signedIn('openid offline_access');
    const issued = (await rows()).at(-1)!;
    const account = async () => {
      const page = await browser.request(`${idp.issuer}/account`);
      expect(page.status).toBe(200);
      return page;
    };
    let page = await account();
    const appRevoked = await recorded(async () => {
      await browser.request(`${idp.issuer}/account/apps/partner/revoke`, { form: { _csrf: hiddenField(page.body, '_csrf') } });
    });
    expect(appRevoked).toEqual([
      expect.objectContaining({ event_type: 'app.revoked', outcome: 'success', user_id: aliceId, client_id: 'partner', ip: browser.ip, user_agent: AGENT, details: { grants: 1 } }),
    ]);

    page = await account();
    const signedOut = await recorded(async () => {
      const done = await browser.request(`${idp.issuer}/account/sessions/${issued.session_id}/sign-out`, { form: { _csrf: hiddenField(page.body, '_csrf') } });
      expect(done.body).toContain('You are signed out');
    });
    expect(signedOut).toEqual([
      expect.objectContaining({
        event_type: 'logout.account',
        outcome: 'success',
        user_id: aliceId,
        session_id: issued.session_id,
        ip: browser.ip,
        details: expect.objectContaining({ ended: 'this_session', sessions: 1 }),
      }),
    ]);
  });

  it('records a sign-in refused by the rate limit, with the limit', async () => {
    const ip = nextIp();
    const added = await recorded(async () => {
      for (let attempt = 0; attempt <= LIMITS['login-ip'].points; attempt += 1) {
        const browser = new ProxiedBrowser(ip);
        const page = await browser.follow((await authorizationRequest(partner, 'openid')).url);
        await browser.request(new URL(/action="([^"]+)"/.exec(page.body)![1]!, idp.issuer).toString(), {
          form: { _csrf: hiddenField(page.body, '_csrf'), email: 'someone@example.com', password: WRONG_PASSWORD },
        });
      }
    });
    expect(added.map((row) => row.event_type)).toEqual([...Array<string>(LIMITS['login-ip'].points).fill('login.failure'), 'login.rate_limited']);
    expect(added.at(-1)).toMatchObject({ outcome: 'failure', ip, client_id: 'partner', user_agent: AGENT, details: expect.objectContaining({ limit: 'ip' }) });
  });

  it('stores no password, token, code or secret, only uuids as user ids, and keeps one intact chain', async () => {
    const all = await rows();
    expect(all.length).toBeGreaterThan(15);
    const text = JSON.stringify(all);
    for (const secret of secrets) expect(text.includes(secret), `a secret value (${secret.slice(0, 6)}…) is in the audit log`).toBe(false);
    expect(text).not.toContain('@example.com');
    for (const row of all) if (row.user_id !== null) expect(row.user_id).toMatch(UUID);
    // Every row is in the chain, or in the unsealed tail the sealer takes within a second.
    const report = await verifyChain(idp.server.database.db);
    expect(report).toMatchObject({ intact: true });
    expect(report.count + report.unsealed.count).toBe(all.length);
  });

  // Postgres only: the test breaks the table through an owner connection, which the embedded store (one connection, held by the server) has no room for.
  const postgresOnly = kind === 'postgres' ? it : () => {};
  postgresOnly('goes on signing users in when an audit write fails, and logs the event it lost', async () => {
    if (idp.store.kind !== 'postgres') throw new Error('this test needs the Postgres store');
    const owner = new pg.Client({ connectionString: idp.store.url });
    await owner.connect();
    try {
      await owner.query('alter table audit_events rename to audit_events_away');
      try {
        const { tokens } = await signedIn('openid');
        expect(tokens.access_token).toEqual(expect.any(String));
      } finally {
        await owner.query('alter table audit_events_away rename to audit_events');
      }
    } finally {
      await owner.end();
    }
    const lost = idp.logs.map((line) => JSON.parse(line) as { msg?: string; audit?: { type?: string } }).filter((line) => line.msg === 'audit event not recorded');
    expect(lost.map((line) => line.audit?.type)).toEqual(expect.arrayContaining(['login.success', 'token.issued']));
  });
});
