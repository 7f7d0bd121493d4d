import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backchannelReceiver, type BackchannelReceiver } from '../../../test/support/backchannel.ts';
import { Browser, hiddenField } from '../../../test/support/browser.ts';
import { runToExit, type Finished } from '../../../test/support/processes.ts';
import { authorizationRequest, exchangeCode, registeredRelyingParty, type RelyingParty, signIn, webAppClient } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const SESSION_LINE = /^([A-Za-z0-9_-]{20,64}) {2}(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) {2}(.+?) {2}apps=(\S+) {2}last-seen=\S+ {2}ip=\S+ {2}agent=".*"$/;

// Each CLI run is a process start (a second or two): these tests get more time than the default.
describe.each(['embedded', 'postgres+redis'] as const)('idp sessions against a running server (%s)', { timeout: 90_000 }, (setup) => {
  let idp: TestServer;
  let web: RelyingParty;
  let receiver: BackchannelReceiver;
  let logoutTokens: string[];
  let env: Record<string, string>;

  const cli = (args: string[]): Promise<Finished> => runToExit('idp/src/cli/main.ts', ['sessions', ...args], env, 45_000);

  beforeAll(async () => {
    receiver = await backchannelReceiver();
    logoutTokens = receiver.tokens;
    idp = await startTestServer(setup);
    await idp.createUser(alice);
    web = await registeredRelyingParty(idp, webAppClient({ backchannel_logout_uri: receiver.url }));
    const redis = idp.server.config.redis;
    // The CLI reads the same store (and, on Postgres, the same Redis and key-encryption key) as the server.
    env = {
      ...storeEnvironment(idp.store),
      ISSUER: idp.issuer,
      ...(redis?.kind === 'url' ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.keyPrefix } : {}),
    };
  });

  afterAll(async () => {
    await idp?.stop();
    receiver?.server.close();
  });

  async function signedIn(userAgent: string, browser = new Browser()) {
    const request = await authorizationRequest(web, 'openid offline_access');
    const callback = await signIn(browser, idp.issuer, request, web.redirectUri, alice);
    const tokens = await exchangeCode(web, request, callback.location!);
    // A visit to /account from the device records its user agent.
    await browser.request(`${idp.issuer}/account`, { headers: { 'user-agent': userAgent } });
    return tokens;
  }

  async function listed() {
    const result = await cli(['list', '--email', alice.email]);
    expect(result.code, result.stderr).toBe(0);
    return result.out.map((line) => {
      const match = SESSION_LINE.exec(line);
      expect(match, line).not.toBeNull();
      return { uid: match![1]!, started: match![2]!, device: match![3]!, apps: match![4]!.split(',') };
    });
  }

  it('lists, revokes one, then revokes all; logout tokens reach the app and refresh tokens die', async () => {
    const mac = await signedIn('Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36');
    const phone = await signedIn('Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1');

    const sessions = await listed();
    expect(sessions.map((session) => session.device).sort()).toEqual(['Chrome on macOS', 'Safari on iOS']);
    for (const session of sessions) expect(session.apps).toEqual(['web']);
    const macSession = sessions.find((session) => session.device === 'Chrome on macOS')!;

    const one = await cli(['revoke', '--email', alice.email, '--id', macSession.uid]);
    expect(one.code, one.stderr).toBe(0);
    expect(one.out).toEqual([`ended 1 session(s) and revoked 1 grant(s) of ${alice.email}`, 'logout token delivered to web']);
    expect(decodeJwt(logoutTokens.at(-1)!)).toMatchObject({ sid: mac.claims()!['sid'], sub: mac.claims()!.sub, aud: 'web' });
    await expect(oidc.refreshTokenGrant(web.config, mac.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    const refreshed = await oidc.refreshTokenGrant(web.config, phone.refresh_token!);
    expect((await listed()).map((session) => session.device)).toEqual(['Safari on iOS']);

    const all = await cli(['revoke', '--email', alice.email, '--all']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.out[0]).toBe(`ended 1 session(s) and revoked 1 grant(s) of ${alice.email}`);
    expect(all.out).toContain('logout token delivered to web');
    await expect(oidc.refreshTokenGrant(web.config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });

    const none = await cli(['list', '--email', alice.email]);
    expect(none.code).toBe(0);
    expect(none.stdout).toBe('');
    expect(none.err).toEqual([`no live sessions for ${alice.email}`]);
  });

  it('revoke --all also kills offline grants that outlived their browser session', async () => {
    const browser = new Browser();
    const tokens = await signedIn('JobSwipeDesktop/1.0', browser);
    // RP-initiated logout ends the browser session; the offline_access refresh token lives on, as it should.
    const confirm = await browser.follow(
      oidc.buildEndSessionUrl(web.config, { id_token_hint: tokens.id_token!, post_logout_redirect_uri: 'http://localhost:3000/' }).toString(),
    );
    const action = /<form[^>]*action="([^"]+)"/.exec(confirm.body)![1]!;
    await browser.follow(new URL(action, idp.issuer).toString(), (url) => url.startsWith('http://localhost:3000/'), {
      form: { xsrf: hiddenField(confirm.body, 'xsrf'), logout: 'yes' },
    });
    expect(await listed()).toEqual([]);
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token!);

    const before = logoutTokens.length;
    const all = await cli(['revoke', '--email', alice.email, '--all']);
    expect(all.out).toEqual([`ended 0 session(s) and revoked 1 grant(s) of ${alice.email}`, 'logout token delivered to web']);
    // No session is left to name: the token names the user, so the app ends all of that user's sessions.
    const token = decodeJwt(logoutTokens.at(-1)!);
    expect(logoutTokens.length).toBe(before + 1);
    expect(token).toMatchObject({ sub: tokens.claims()!.sub, aud: 'web' });
    expect(token).not.toHaveProperty('sid');
    await expect(oidc.refreshTokenGrant(web.config, refreshed.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
  });

  // The commands parse their arguments the same way whichever store they end up running on.
  if (setup === 'postgres+redis') it('refuses bad requests with one line and a usage status', async () => {
    const both = await cli(['revoke', '--email', alice.email, '--all', '--id', 'abc']);
    expect(both.code).toBe(2);
    expect(both.err).toHaveLength(1);
    expect(both.err[0]).toContain('give either --all or --id ID');
    const badId = await cli(['revoke', '--email', alice.email, '--id', 'not a/uid']);
    expect(badId.code).toBe(2);
    expect(badId.err[0]).toContain('is not a session id');
    // Session ids are base64url: one may start with "-", and is still read as the value of --id.
    const unknownId = await cli(['revoke', '--email', alice.email, '--id', '-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']);
    expect(unknownId.code).toBe(1);
    expect(unknownId.err[0]).toContain('has no live session');
    const nobody = await cli(['list', '--email', 'nobody@example.com']);
    expect(nobody.code).toBe(1);
    expect(nobody.err).toEqual(['idp sessions list: no user with email nobody@example.com']);
  });

  it('users disable signs the user out everywhere at once', async () => {
    const tokens = await signedIn('Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0');
    const before = logoutTokens.length;
    const disabled = await runToExit('idp/src/cli/main.ts', ['users', 'disable', '--email', alice.email], env, 45_000);
    expect(disabled.code, disabled.stderr).toBe(0);
    expect(disabled.out[1]).toBe('ended 1 session(s) and revoked 1 grant(s)');
    await expect(oidc.refreshTokenGrant(web.config, tokens.refresh_token!)).rejects.toMatchObject({ error: 'invalid_grant' });
    expect(logoutTokens.length).toBe(before + 1);
    expect(decodeJwt(logoutTokens.at(-1)!)).toMatchObject({ sid: tokens.claims()!['sid'] });
  });
});
