import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  type Harness,
} from './mfa-harness.ts';

/*
 * The authenticator app in headless Chromium against the running provider, with openid-client as
 * the relying party: set up on /account, then the second step of every sign-in, each code once,
 * recovery codes once each, wrong codes under the sign-in limits, and turning it off.
 */
describe('authenticator app (TOTP) in Chromium', { timeout: 60_000 }, () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness('postgres+redis');
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('turns on with a computed code, then asks for a code after the password: acr mfa, amr pwd otp mfa; a used code is refused', async () => {
    const user = await newUser(h.idp);
    const { page, context, errors } = await newBrowser(h);
    await openAccount(h, page, user);
    expect(await page.getByRole('heading', { name: 'Two-factor authentication' }).count()).toBe(1);
    const { secret } = await turnOnTotp(page, user.password);
    await page.getByRole('link', { name: 'Back to your account' }).click();
    expect(await page.locator('#authenticator-app').innerText()).toContain('10 of 10 recovery codes left');

    // The secret is sealed at rest: the row does not hold it.
    const row = await h.idp.server.database.db.selectFrom('totp_factors').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow();
    expect(row.secret_sealed).not.toContain(secret);
    expect(row.enabled_at).not.toBeNull();

    await context.clearCookies();
    const request = await startSignIn(h, page);
    await enterPassword(page, user);
    expect(await heading(page)).toBe('Two-factor authentication');
    // The code of the step after the one that turned the app on (that one is spent).
    const code = await codeFor(secret, 1);
    await page.fill('#code', code);
    await page.getByRole('button', { name: 'Verify' }).click();
    const claims = await idTokenAt(h, page, request);
    expect(claims['acr']).toBe(ACR_MFA);
    expect(claims['amr']).toEqual(['pwd', 'otp', 'mfa']);

    // The same code again, in a new sign-in: refused, and nothing signs in.
    await context.clearCookies();
    await startSignIn(h, page);
    await enterPassword(page, user);
    await page.fill('#code', code);
    await page.getByRole('button', { name: 'Verify' }).click();
    expect(await heading(page)).toBe('Two-factor authentication');
    expect(await page.getByRole('alert').innerText()).toContain('That code was used already');
    expect(page.url().startsWith(h.callback)).toBe(false);

    const events = (await auditOf(h, user.id)).map((event) => [event.event_type, event.outcome, event.details['reason'] ?? event.details['method'] ?? event.details['amr'] ?? null]);
    expect(events).toEqual(expect.arrayContaining([
      ['mfa.totp_enabled', 'success', null],
      ['mfa.verified', 'success', 'otp'],
      ['login.success', 'success', 'pwd otp mfa'],
      ['mfa.verified', 'failure', 'reused_code'],
    ]));
    expect(errors.filter((error) => !error.startsWith('401 POST /interaction/'))).toEqual([]);
    await context.close();
  });

  it('takes a recovery code in the same field once; the second use is refused', async () => {
    const user = await newUser(h.idp);
    const { page, context } = await newBrowser(h);
    await openAccount(h, page, user);
    const { recoveryCodes } = await turnOnTotp(page, user.password);

    await context.clearCookies();
    const request = await startSignIn(h, page);
    await enterPassword(page, user);
    await page.fill('#code', recoveryCodes[3]!.toUpperCase());
    await page.getByRole('button', { name: 'Verify' }).click();
    const claims = await idTokenAt(h, page, request);
    expect(claims['acr']).toBe(ACR_MFA);
    expect(claims['amr']).toEqual(['pwd', 'otp', 'mfa']);

    await context.clearCookies();
    await startSignIn(h, page);
    await enterPassword(page, user);
    await page.fill('#code', recoveryCodes[3]!);
    await page.getByRole('button', { name: 'Verify' }).click();
    expect(await page.getByRole('alert').innerText()).toContain('That code is not right');

    const used = await h.idp.server.database.db.selectFrom('recovery_codes').select('used_at').where('user_id', '=', user.id).where('used_at', 'is not', null).execute();
    expect(used).toHaveLength(1);
    const events = await auditOf(h, user.id);
    expect(events.find((event) => event.event_type === 'mfa.recovery_code_used')).toMatchObject({ outcome: 'success', details: { remaining: 9 } });
    await context.close();
  });

  it('counts wrong codes against the address and the account: the 6th try from an address is 429 even with the right code, and 10 across two addresses lock the account', async () => {
    const user = await newUser(h.idp);
    const setup = await newBrowser(h);
    await openAccount(h, setup.page, user);
    const { secret } = await turnOnTotp(setup.page, user.password);
    await setup.context.close();

    const first = await newBrowser(h);
    await startSignIn(h, first.page);
    await enterPassword(first.page, user);
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await first.page.fill('#code', String(100000 + attempt));
      const answer = first.page.waitForResponse((response) => response.url().endsWith('/second-factor') && response.request().method() === 'POST');
      await first.page.getByRole('button', { name: 'Verify' }).click();
      expect((await answer).status()).toBe(401);
    }
    await first.page.fill('#code', await codeFor(secret, 1));
    const blocked = first.page.waitForResponse((response) => response.url().endsWith('/second-factor') && response.request().method() === 'POST');
    await first.page.getByRole('button', { name: 'Verify' }).click();
    expect((await blocked).status()).toBe(429);
    expect(await first.page.getByRole('alert').innerText()).toContain('There were too many failed attempts to sign in from your network');
    await first.context.close();

    // Five more wrong codes from a second address: ten failures for the account.
    const second = await newBrowser(h);
    await startSignIn(h, second.page);
    await enterPassword(second.page, user);
    expect(await heading(second.page)).toBe('Two-factor authentication');
    for (let attempt = 0; attempt < 5; attempt += 1) {
      await second.page.fill('#code', String(200000 + attempt));
      await second.page.getByRole('button', { name: 'Verify' }).click();
      expect(await second.page.getByRole('alert').innerText()).toContain('That code is not right');
    }
    await second.context.close();

    // A third address: the account itself is held out now, before the password is looked at.
    const third = await newBrowser(h);
    await startSignIn(h, third.page);
    const answer = third.page.waitForResponse((response) => response.url().endsWith('/login') && response.request().method() === 'POST');
    await enterPassword(third.page, user);
    expect((await answer).status()).toBe(429);
    expect(await third.page.getByRole('alert').innerText()).toContain('There were too many failed attempts to sign in to this account');
    await third.context.close();
  });

  it('turns off only with the password and a code; then the password alone signs in (acr pwd)', async () => {
    const user = await newUser(h.idp);
    const { page, context } = await newBrowser(h);
    await openAccount(h, page, user);
    const { secret } = await turnOnTotp(page, user.password);
    await page.goto(`${h.idp.issuer}/account`);

    // The right password with a wrong code: still on.
    await page.fill('#totp_off_password', user.password);
    await page.fill('#totp_off_code', '000000');
    await page.getByRole('button', { name: 'Turn off' }).click();
    expect(await page.locator('main').innerText()).toContain('That code is not right');
    await page.goto(`${h.idp.issuer}/account`);
    expect(await page.locator('#authenticator-app').innerText()).toContain('On');

    // A right code with a wrong password: still on.
    await page.fill('#totp_off_password', 'not the password at all');
    await page.fill('#totp_off_code', await codeFor(secret, 1));
    await page.getByRole('button', { name: 'Turn off' }).click();
    expect(await page.locator('main').innerText()).toContain('That is not your current password');
    await page.goto(`${h.idp.issuer}/account`);
    expect(await page.locator('#authenticator-app').innerText()).toContain('On');

    await page.fill('#totp_off_password', user.password);
    await page.fill('#totp_off_code', await codeFor(secret, 1));
    await page.getByRole('button', { name: 'Turn off' }).click();
    expect(await page.getByRole('status').innerText()).toContain('Your authenticator app is turned off');
    expect(await page.locator('#authenticator-app').innerText()).toContain('Off');
    expect(await h.idp.server.database.db.selectFrom('recovery_codes').select('user_id').where('user_id', '=', user.id).execute()).toEqual([]);

    await context.clearCookies();
    const request = await startSignIn(h, page);
    await enterPassword(page, user);
    const claims = await idTokenAt(h, page, request);
    expect(claims['acr']).toBe(ACR_PWD);
    expect(claims['amr']).toEqual(['pwd']);
    const events = (await auditOf(h, user.id)).filter((event) => event.event_type === 'mfa.totp_disabled').map((event) => [event.outcome, event.details['reason'] ?? null]);
    expect(events).toEqual([['failure', 'wrong_code'], ['failure', 'wrong_password'], ['success', null]]);
    await context.close();
  });
});
