import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backchannelReceiver, type BackchannelReceiver } from '../../../test/support/backchannel.ts';
import { Browser, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, oauthError, registeredRelyingParty, relyingParty, type RelyingParty, signIn, webAppClient } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };
const bob = { email: 'bob@example.com', password: 'another good passphrase' };
const CHROME_MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

describe.each(['embedded', 'postgres+redis'] as const)('sessions and apps on /account (%s)', (setup) => {
  let idp: TestServer;
  let web: RelyingParty;
  let jobs: RelyingParty;
  let webLogout: BackchannelReceiver;
  let jobsLogout: BackchannelReceiver;

  beforeAll(async () => {
    [webLogout, jobsLogout] = await Promise.all([backchannelReceiver(), backchannelReceiver()]);
    idp = await startTestServer(setup);
    await idp.createUser({ ...alice, name: 'Alice Example' });
    await idp.createUser(bob);
    web = await registeredRelyingParty(idp, webAppClient({ backchannel_logout_uri: webLogout.url }));
    jobs = await relyingParty(
      idp.issuer,
      await idp.registerClient({
        client_id: 'jobs',
        client_name: 'Partner Jobs',
        redirect_uris: ['http://localhost:3001/callback'],
        backchannel_logout_uri: jobsLogout.url,
        first_party: true,
      }),
    );
  });

  afterAll(async () => {
    await idp?.stop();
    webLogout?.server.close();
    jobsLogout?.server.close();
  });

  async function signedIn(rp: RelyingParty, scope: string, browser = new Browser(), user = alice) {
    const request = await authorizationRequest(rp, scope);
    const callback = await signIn(browser, idp.issuer, request, rp.redirectUri, user);
    expect(callback.status).toBe(303);
    return { browser, tokens: await exchangeCode(rp, request, callback.location!) };
  }

  async function accountPage(browser: Browser) {
    const page = await browser.request(`${idp.issuer}/account`, { headers: { 'user-agent': CHROME_MAC } });
    expect(page.status).toBe(200);
    return page;
  }

  const sessionUids = (html: string) => [...html.matchAll(/data-session-uid="([^"]+)"/g)].map((match) => match[1]!);
  const introspect = (token: string) => oidc.tokenIntrospection(web.config, token);

  it('puts sid in every ID token, and advertises back-channel logout', async () => {
    const { tokens } = await signedIn(web, 'openid');
    expect(tokens.claims()!['sid']).toEqual(expect.any(String));
    const discovery = (await (await fetch(`${idp.issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(discovery).toMatchObject({ backchannel_logout_supported: true, backchannel_logout_session_supported: true });
  });

  it('sends a signed-out visitor through sign-in and back to /account', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${idp.issuer}/account`);
    expect(start.body).toContain('name="password"');
    expect(start.body).toContain('JobSwipe account');
    const form = /<form method="post" action="([^"]+)"/.exec(start.body)![1]!;
    const back = await browser.follow(new URL(form, idp.issuer).toString(), undefined, {
      form: { _csrf: hiddenField(start.body, '_csrf'), email: alice.email, password: alice.password },
    });
    expect(back.url).toBe(`${idp.issuer}/account`);
    expect(back.body).toContain('Your account');
    expect(back.body).toContain(alice.email);
    // The built-in account client is not one of the user's apps.
    expect(back.body).not.toContain('data-client-id="jobswipe-account"');
  });

  it('lists each session with its device, age and apps, and the connected apps', async () => {
    const first = await signedIn(web, 'openid email offline_access');
    await signedIn(jobs, 'openid', first.browser);
    const page = await accountPage(first.browser);
    const uids = sessionUids(page.body);
    expect(uids.length).toBeGreaterThanOrEqual(1);
    const current = page.body.slice(page.body.indexOf('This browser') - 400, page.body.indexOf('This browser'));
    expect(current).toContain('Chrome on macOS, signed in just now');
    expect(page.body).toMatch(/Apps: (JobSwipe Web, Partner Jobs|Partner Jobs, JobSwipe Web)/);
    expect(page.body).toContain('data-client-id="web"');
    expect(page.body).toContain('data-client-id="jobs"');
    expect(page.body).toContain('>Sign out</button>');
    expect(page.body).toContain('>Revoke access</button>');
    expect(page.headers.get('cache-control')).toBe('no-store');
  });

  it('refuses a forged form (403) and changes nothing', async () => {
    const { browser, tokens } = await signedIn(web, 'openid offline_access');
    await accountPage(browser);
    const forged = await browser.request(`${idp.issuer}/account/apps/web/revoke`, { form: { _csrf: 'forged' } });
    expect(forged.status).toBe(403);
    // Without a token at all, the same refusal: the token is checked before the form is parsed.
    const missing = await browser.request(`${idp.issuer}/account/sessions/sign-out-others`, { form: {} });
    expect(missing.status).toBe(403);
    const refreshed = await oidc.refreshTokenGrant(web.config, tokens.refresh_token!);
    expect(refreshed.access_token).toEqual(expect.any(String));
  });

  it('signing out a session from /account kills its offline refresh token and access token at once, and tells the app', async () => {
    const phone = await signedIn(web, 'openid offline_access');
    const laptop = await signedIn(web, 'openid offline_access');
    const phonePage = await accountPage(phone.browser);
    const phoneUid = /data-session-uid="([^"]+)">\s*<div class="item-title">[^<]*<span class="badge">This browser/.exec(phonePage.body)![1]!;
    expect((await introspect(phone.tokens.access_token)).active).toBe(true);
    const sid = phone.tokens.claims()!['sid'];
    const before = webLogout.tokens.length;

    // The laptop signs the phone out.
    const laptopPage = await accountPage(laptop.browser);
    expect(sessionUids(laptopPage.body)).toContain(phoneUid);
    const done = await laptop.browser.request(`${idp.issuer}/account/sessions/${phoneUid}/sign-out`, {
      form: { _csrf: hiddenField(laptopPage.body, '_csrf') },
    });
    expect(done.status).toBe(303);
    expect(done.location).toBe(`${idp.issuer}/account?notice=session-ended`);

    expect(await oauthError(oidc.refreshTokenGrant(web.config, phone.tokens.refresh_token!))).toBe('invalid_grant');
    expect((await introspect(phone.tokens.access_token)).active).toBe(false);
    const refreshed = await oidc.refreshTokenGrant(web.config, laptop.tokens.refresh_token!);
    expect(refreshed.access_token).toEqual(expect.any(String));

    await expect.poll(() => webLogout.tokens.length).toBeGreaterThan(before);
    const claims = webLogout.tokens.slice(before).map((token) => decodeJwt(token));
    expect(claims).toContainEqual(expect.objectContaining({ sid, sub: phone.tokens.claims()!.sub, aud: 'web' }));

    // The phone is signed out of the provider: /account asks it to sign in again.
    const again = await phone.browser.follow(`${idp.issuer}/account`);
    expect(again.body).toContain('name="password"');
  });

  it('revoking an app ends that app only, for every session', async () => {
    const { browser, tokens: webTokens } = await signedIn(web, 'openid offline_access');
    const { tokens: jobsTokens } = await signedIn(jobs, 'openid offline_access', browser);
    const page = await accountPage(browser);
    const before = jobsLogout.tokens.length;
    const done = await browser.request(`${idp.issuer}/account/apps/jobs/revoke`, { form: { _csrf: hiddenField(page.body, '_csrf') } });
    expect(done.location).toBe(`${idp.issuer}/account?notice=app-revoked`);

    expect(await oauthError(oidc.refreshTokenGrant(jobs.config, jobsTokens.refresh_token!))).toBe('invalid_grant');
    expect((await oidc.tokenIntrospection(jobs.config, jobsTokens.access_token)).active).toBe(false);
    expect((await oidc.refreshTokenGrant(web.config, webTokens.refresh_token!)).access_token).toEqual(expect.any(String));

    await expect.poll(() => jobsLogout.tokens.length).toBeGreaterThan(before);
    // One logout token per session the app was used in; this browser's carries its sid.
    const sent = jobsLogout.tokens.slice(before).map((token) => decodeJwt(token));
    expect(sent).toContainEqual(expect.objectContaining({ sid: jobsTokens.claims()!['sid'], aud: 'jobs' }));
    const after = await browser.request(done.location!);
    expect(after.body).toContain('The app’s access is revoked');
    expect(after.body).not.toContain('data-client-id="jobs"');
    expect(after.body).not.toMatch(/Apps: [^<]*Partner Jobs/);
  });

  it('signs out every other session, and keeps this one', async () => {
    const here = await signedIn(web, 'openid offline_access');
    const elsewhere = await signedIn(web, 'openid offline_access');
    const page = await accountPage(here.browser);
    expect(sessionUids(page.body).length).toBeGreaterThanOrEqual(2);
    const done = await here.browser.request(`${idp.issuer}/account/sessions/sign-out-others`, { form: { _csrf: hiddenField(page.body, '_csrf') } });
    expect(done.location).toBe(`${idp.issuer}/account?notice=others-ended`);
    const after = await accountPage(here.browser);
    expect(sessionUids(after.body)).toHaveLength(1);
    expect(after.body).toContain('You are not signed in anywhere else.');
    expect(await oauthError(oidc.refreshTokenGrant(web.config, elsewhere.tokens.refresh_token!))).toBe('invalid_grant');
    expect((await oidc.refreshTokenGrant(web.config, here.tokens.refresh_token!)).access_token).toEqual(expect.any(String));
  });

  it('signing out this browser from /account signs it out of the provider', async () => {
    const { browser, tokens } = await signedIn(web, 'openid offline_access');
    const page = await accountPage(browser);
    const uid = /data-session-uid="([^"]+)">\s*<div class="item-title">[^<]*<span class="badge">This browser/.exec(page.body)![1]!;
    const done = await browser.request(`${idp.issuer}/account/sessions/${uid}/sign-out`, { form: { _csrf: hiddenField(page.body, '_csrf') } });
    expect(done.status).toBe(200);
    expect(done.body).toContain('You are signed out');
    expect(await oauthError(oidc.refreshTokenGrant(web.config, tokens.refresh_token!))).toBe('invalid_grant');
    const again = await browser.follow(`${idp.issuer}/account`);
    expect(again.body).toContain('name="password"');
  });

  it("cannot end another user's session", async () => {
    const victim = await signedIn(web, 'openid offline_access', new Browser(), bob);
    const victimUid = sessionUids((await accountPage(victim.browser)).body)[0]!;
    const attacker = await signedIn(web, 'openid');
    const page = await accountPage(attacker.browser);
    const done = await attacker.browser.request(`${idp.issuer}/account/sessions/${victimUid}/sign-out`, { form: { _csrf: hiddenField(page.body, '_csrf') } });
    expect(done.location).toBe(`${idp.issuer}/account?notice=nothing-changed`);
    expect((await oidc.refreshTokenGrant(web.config, victim.tokens.refresh_token!)).access_token).toEqual(expect.any(String));
    expect(sessionUids((await accountPage(victim.browser)).body)).toContain(victimUid);
  });

  it('answers a signed-out form post with a page, not an error', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${idp.issuer}/account`);
    const posted = await browser.request(`${idp.issuer}/account/sessions/sign-out-others`, { form: { _csrf: hiddenField(start.body, '_csrf') } });
    expect(posted.status).toBe(401);
    expect(posted.body).toContain('You are signed out');
  });

  it('RP-initiated logout: the session ends, offline refresh tokens survive, others die, the app is told', async () => {
    const offline = await signedIn(web, 'openid offline_access');
    const online = await signedIn(jobs, 'openid', offline.browser);
    const uid = sessionUids((await accountPage(offline.browser)).body)[0]!;
    const before = webLogout.tokens.length;
    const endSession = oidc.buildEndSessionUrl(web.config, {
      id_token_hint: offline.tokens.id_token!,
      post_logout_redirect_uri: 'http://localhost:3000/',
    });
    const confirm = await offline.browser.follow(endSession.toString());
    const action = /<form[^>]*action="([^"]+)"/.exec(confirm.body)![1]!;
    const done = await offline.browser.follow(new URL(action, idp.issuer).toString(), (url) => url.startsWith('http://localhost:3000/'), {
      form: { xsrf: hiddenField(confirm.body, 'xsrf'), logout: 'yes' },
    });
    expect(done.location).toBe('http://localhost:3000/');

    expect((await oidc.refreshTokenGrant(web.config, offline.tokens.refresh_token!)).access_token).toEqual(expect.any(String));
    expect((await oidc.tokenIntrospection(jobs.config, online.tokens.access_token)).active).toBe(false);
    await expect.poll(() => webLogout.tokens.length).toBeGreaterThan(before);
    expect(decodeJwt(webLogout.tokens.at(-1)!)).toMatchObject({ sid: offline.tokens.claims()!['sid'] });
    // The ended session is no longer listed anywhere.
    const other = await signedIn(web, 'openid');
    expect(sessionUids((await accountPage(other.browser)).body)).not.toContain(uid);
  });
});
