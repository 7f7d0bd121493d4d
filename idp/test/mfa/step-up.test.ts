import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToExit } from '../../../test/support/processes.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';
import {
  ACR_MFA,
  ACR_PWD,
  auditOf,
  codeFor,
  enterPassword,
  heading,
  idTokenAt,
  newBrowser,
  newUser,
  openAccount,
  startHarness,
  startSignIn,
  turnOnTotp,
  virtualAuthenticator,
  type Harness,
} from './mfa-harness.ts';

/*
 * What relying parties can ask for, and passkeys, in headless Chromium with openid-client as the
 * relying party: acr_values=urn:jobswipe:acr:mfa on a password-only session (the second factor, or
 * setting one up), prompt=login, passkeys through a CDP virtual authenticator (added on /account,
 * passwordless sign-in, second factor), and the administrator's reset.
 */
describe('step-up, passkeys and the reset in Chromium', { timeout: 90_000 }, () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('postgres+redis');
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('discovery lists the acr values', async () => {
    const metadata = h.rp.config.serverMetadata();
    expect(metadata.acr_values_supported).toEqual([ACR_PWD, ACR_MFA]);
  });

  it('acr_values=mfa on a password-only session: prompt=none is refused, then only the code is asked; the ID token says mfa', async () => {
    const user = await newUser(h.idp);
    const { page, context, errors } = await newBrowser(h);
    const first = await startSignIn(h, page);
    await enterPassword(page, user);
    const before = await idTokenAt(h, page, first);
    expect([before['acr'], before['amr']]).toEqual([ACR_PWD, ['pwd']]);

    // The app turns on its authenticator app meanwhile; this session stays a password-only one.
    await openAccount(h, page, user);
    const { secret } = await turnOnTotp(page, user.password);

    // Without an interaction the level cannot be raised: login_required, not a token at the lower level.
    await startSignIn(h, page, { acr_values: ACR_MFA, prompt: 'none' });
    await page.waitForURL((url) => url.toString().startsWith(h.callback));
    expect(new URL(page.url()).searchParams.get('error')).toBe('login_required');

    const stepUp = await startSignIn(h, page, { acr_values: ACR_MFA });
    expect(await heading(page)).toBe('Two-factor authentication');
    expect(await page.locator('#password').count()).toBe(0);
    await page.fill('#code', await codeFor(secret, 1));
    await page.getByRole('button', { name: 'Verify' }).click();
    const after = await idTokenAt(h, page, stepUp);
    expect(after['acr']).toBe(ACR_MFA);
    expect(after['amr']).toEqual(['pwd', 'otp', 'mfa']);
    expect(after.sub).toBe(before.sub);

    // Now the session is at that level: the same request needs no interaction at all.
    const again = await startSignIn(h, page, { acr_values: ACR_MFA, prompt: 'none' });
    expect((await idTokenAt(h, page, again))['acr']).toBe(ACR_MFA);

    // prompt=login and max_age=0 still ask for the password (then the code) again.
    await startSignIn(h, page, { prompt: 'login' });
    expect(await heading(page)).toBe('Sign in');
    await startSignIn(h, page, { max_age: '0' });
    expect(await heading(page)).toBe('Sign in');
    expect(errors).toEqual([]);
    await context.close();
  });

  it('acr_values=mfa for a user with no second factor: after the password, the app is set up in the sign-in, recovery codes shown, then signed in at mfa', async () => {
    const user = await newUser(h.idp);
    const { page, context } = await newBrowser(h);
    const request = await startSignIn(h, page, { acr_values: ACR_MFA });
    await enterPassword(page, user);
    expect(await heading(page)).toBe('Set up your authenticator app');
    const secret = (await page.locator('#totp-secret').innerText()).trim();
    await page.fill('input[name="code"]', '123456' === (await codeFor(secret)) ? '654321' : '123456');
    await page.getByRole('button', { name: 'Turn on' }).click();
    expect(await page.getByRole('alert').innerText()).toContain('That code is not right');
    await page.fill('input[name="code"]', await codeFor(secret));
    await page.getByRole('button', { name: 'Turn on' }).click();
    expect((await page.locator('#recovery-codes').innerText()).trim().split('\n')).toHaveLength(10);
    await page.getByRole('button', { name: 'Continue' }).click();
    const claims = await idTokenAt(h, page, request);
    expect([claims['acr'], claims['amr']]).toEqual([ACR_MFA, ['pwd', 'otp', 'mfa']]);
    await context.close();
  });

  it('passkeys: added on /account with a virtual authenticator, sign in without email or password (hwk user), and serve as the second factor after the password', async () => {
    const user = await newUser(h.idp);
    const { page, context, errors } = await newBrowser(h);
    await virtualAuthenticator(context, page);
    await openAccount(h, page, user);

    // The password is asked again before a passkey is added.
    await page.fill('#passkey_name', 'Laptop');
    await page.fill('#passkey_password', 'not the password at all');
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    // The button runs the ceremony in the page, then posts: the answer is a new page, waited for.
    await page.locator('main').getByText('That is not your current password').waitFor();
    await page.goto(`${h.idp.issuer}/account`);
    await page.fill('#passkey_name', 'Laptop');
    await page.fill('#passkey_password', user.password);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    expect(await page.getByRole('status').innerText()).toContain('Your passkey is added');
    expect(await page.locator('#passkey-list').innerText()).toContain('Laptop');
    expect(await page.locator('#passkey-list').innerText()).toContain('never used');

    // Passwordless: the login page's button, no email typed.
    await context.clearCookies();
    const passwordless = await startSignIn(h, page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    const claims = await idTokenAt(h, page, passwordless);
    expect(claims.sub).toBe(user.id);
    expect([claims['acr'], claims['amr']]).toEqual([ACR_MFA, ['hwk', 'user']]);

    // After the password, a user with a passkey gives it as the second factor.
    await context.clearCookies();
    const twoStep = await startSignIn(h, page);
    await enterPassword(page, user);
    expect(await heading(page)).toBe('Two-factor authentication');
    expect(await page.locator('#code').count()).toBe(0);
    // The password alone cannot set up an app in place of the passkey: the set-up sends back here.
    const uid = /\/interaction\/([^/]+)\/second-factor$/.exec(new URL(page.url()).pathname)![1]!;
    await page.goto(`${h.idp.issuer}/interaction/${uid}/enrol`);
    expect(new URL(page.url()).pathname).toBe(`/interaction/${uid}/second-factor`);
    expect(await page.locator('#totp-secret').count()).toBe(0);
    await page.getByRole('button', { name: 'Use a passkey' }).click();
    const second = await idTokenAt(h, page, twoStep);
    expect([second['acr'], second['amr']]).toEqual([ACR_MFA, ['pwd', 'hwk', 'user', 'mfa']]);

    await openAccount(h, page, user);
    expect(await page.locator('#passkey-list').innerText()).toContain('last used');
    // The one refusal: the wrong password.
    expect(errors).toEqual(['401 POST /account/passkeys']);

    // Removed: it no longer signs in.
    await page.locator('#passkey-list').getByRole('button', { name: 'Remove' }).click();
    expect(await page.getByRole('status').innerText()).toContain('That passkey is removed');
    await context.clearCookies();
    await startSignIn(h, page);
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.waitForURL((url) => url.searchParams.get('passkey') === 'failed');
    expect(await page.getByRole('alert').innerText()).toContain('That passkey did not sign you in');

    const events = (await auditOf(h, user.id)).map((event) => `${event.event_type}:${event.outcome}`);
    expect(events).toEqual(expect.arrayContaining(['mfa.passkey_added:failure', 'mfa.passkey_added:success', 'mfa.verified:success', 'mfa.passkey_removed:success']));
    await context.close();
  });

  it('idp users mfa-reset --email E removes every factor (audited): the password alone signs in again', async () => {
    const user = await newUser(h.idp);
    const { page, context } = await newBrowser(h);
    await virtualAuthenticator(context, page);
    await openAccount(h, page, user);
    await turnOnTotp(page, user.password);
    await page.goto(`${h.idp.issuer}/account`);
    await page.fill('#passkey_password', user.password);
    await page.getByRole('button', { name: 'Add a passkey' }).click();
    expect(await page.getByRole('status').innerText()).toContain('Your passkey is added');

    const redis = h.idp.server.config.redis;
    const env = { ...storeEnvironment(h.idp.store), ISSUER: h.idp.issuer, ...(redis?.kind === 'url' ? { REDIS_URL: redis.url, REDIS_KEY_PREFIX: redis.keyPrefix } : {}) };
    const reset = await runToExit('idp/src/cli/main.ts', ['users', 'mfa-reset', '--email', user.email], env, 45_000);
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.out).toEqual([`removed the second factors of ${user.email}: authenticator app removed, 10 recovery code(s), 1 passkey(s)`]);
    const none = await runToExit('idp/src/cli/main.ts', ['users', 'mfa-reset', '--email', user.email], env, 45_000);
    expect(none.out).toEqual([`user ${user.email} had no second factor`]);

    await context.clearCookies();
    const request = await startSignIn(h, page);
    await enterPassword(page, user);
    expect((await idTokenAt(h, page, request))['acr']).toBe(ACR_PWD);
    const events = await auditOf(h, user.id);
    expect(events.find((event) => event.event_type === 'admin.mfa_reset')).toMatchObject({ outcome: 'success', details: { totp: true, recovery_codes: 10, passkeys: 1, via: 'cli' } });
    await context.close();
  });
});
