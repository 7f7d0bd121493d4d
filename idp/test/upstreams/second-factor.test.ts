import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGoogleLike, type RunningUpstream } from '../../../test/support/upstreams.ts';
import { ACR_MFA, ACR_PWD, auditOf, codeFor, heading, idTokenAt, newBrowser, openAccount, startHarness, startSignIn, turnOnTotp, type Harness } from '../mfa/mfa-harness.ts';

/*
 * An upstream sign-in is a first step like the password: a user with a second factor gives it after
 * the upstream, in headless Chromium against the running provider and a Google-like upstream, with
 * openid-client as the relying party.
 */

const dana = { email: 'dana@gmail.example', password: 'dana has a long password', name: 'Dana Scully' };

/** The 30-second step of the clock now (otplib's). */
const stepNow = () => Math.floor(Date.now() / 30_000);

async function atGoogle(page: Page, google: RunningUpstream, account: string): Promise<void> {
  await page.waitForURL((url) => url.origin === google.url);
  await page.getByLabel('Account').fill(account);
  await page.getByRole('button', { name: 'Sign in upstream' }).click();
}

describe('a second factor after an upstream sign-in', { timeout: 90_000 }, () => {
  let h: Harness;
  let google: RunningUpstream;
  let secret = '';
  /** The time step of the last code the provider accepted for Dana: each step is spent once. */
  let spentStep = 0;

  beforeAll(async () => {
    h = await startHarness('postgres+redis');
    google = await startGoogleLike({
      id: 'google',
      name: 'Google',
      callbacks: [`${h.idp.issuer}/upstream/google/callback`],
      accounts: {
        dana: { sub: '104729000000000000011', email: dana.email, emailVerified: true, name: dana.name },
        erin: { sub: '104729000000000000012', email: 'erin@gmail.example', emailVerified: true, name: 'Erin Example' },
      },
    });
    await h.idp.registerUpstream(google.entry);
  }, 60_000);
  afterAll(async () => {
    await google?.close();
    await h?.stop();
  });

  it('first Google sign-in of a password user with the authenticator app: Link and continue, then the code; amr fed pwd otp mfa, acr mfa', async () => {
    const user = await h.idp.createUser(dana);
    const { page, context, errors } = await newBrowser(h);
    await openAccount(h, page, dana);
    ({ secret } = await turnOnTotp(page, dana.password));
    await context.clearCookies();

    const request = await startSignIn(h, page);
    await page.getByRole('button', { name: 'Continue with Google' }).click();
    await atGoogle(page, google, 'dana');
    await page.waitForURL((url) => url.origin === h.idp.issuer && url.pathname.endsWith('/upstream'));
    expect(await heading(page)).toBe('An account with this email already exists');
    await page.getByLabel('Password').fill(dana.password);
    await page.getByRole('button', { name: 'Link and continue' }).click();

    await page.waitForURL((url) => url.pathname.endsWith('/second-factor'));
    expect(await heading(page)).toBe('Two-factor authentication');
    // Linked already (the password proved it); signed in only after the code.
    const linked = await h.idp.server.database.db.selectFrom('upstream_identities').select('upstream_id').where('user_id', '=', user.id).execute();
    expect(linked).toEqual([{ upstream_id: 'google' }]);
    expect(page.url().startsWith(h.callback)).toBe(false);

    // The code of the step after the one that turned the app on (that one is spent).
    spentStep = stepNow() + 1;
    await page.fill('#code', await codeFor(secret, 1));
    await page.getByRole('button', { name: 'Verify' }).click();
    const claims = await idTokenAt(h, page, request);
    expect(claims.sub).toBe(user.id);
    expect(claims['amr']).toEqual(['fed', 'pwd', 'otp', 'mfa']);
    expect(claims['acr']).toBe(ACR_MFA);

    const events = (await auditOf(h, user.id)).map((event) => [event.event_type, event.outcome, event.details['amr'] ?? event.details['method'] ?? null]);
    expect(events).toEqual(expect.arrayContaining([
      ['upstream.sign_in', 'success', 'fed pwd'],
      ['mfa.verified', 'success', 'otp'],
      ['login.success', 'success', 'fed pwd otp mfa'],
    ]));
    expect(errors).toEqual([]);
    await context.close();
  });

  it('a returning Google sign-in asks for the code again: a wrong code is refused and counted, a right one completes (acr mfa)', async () => {
    const user = await h.idp.server.queries.users.findByEmail(dana.email);
    const { page, context, errors } = await newBrowser(h);
    const request = await startSignIn(h, page, { upstream: 'google' });
    await atGoogle(page, google, 'dana');
    await page.waitForURL((url) => url.pathname.endsWith('/second-factor'));
    expect(await heading(page)).toBe('Two-factor authentication');

    const refused = page.waitForResponse((response) => response.url().endsWith('/second-factor') && response.request().method() === 'POST');
    await page.fill('#code', '000000');
    await page.getByRole('button', { name: 'Verify' }).click();
    expect((await refused).status()).toBe(401);
    expect(await heading(page)).toBe('Two-factor authentication');
    expect(await page.getByRole('alert').innerText()).toContain('That code is not right');
    expect(page.url().startsWith(h.callback)).toBe(false);
    const failures = (await auditOf(h, user!.id)).filter((event) => event.event_type === 'mfa.verified' && event.outcome === 'failure');
    expect(failures.map((event) => event.details['reason'])).toEqual(['wrong_code']);

    // A code of a step not spent yet: the provider accepts one step ahead, so wait for the clock to reach the spent one.
    while (stepNow() < spentStep) await new Promise((resolve) => setTimeout(resolve, 500));
    await page.fill('#code', await codeFor(secret, 1));
    await page.getByRole('button', { name: 'Verify' }).click();
    const claims = await idTokenAt(h, page, request);
    expect(claims.sub).toBe(user!.id);
    expect(claims['amr']).toEqual(['fed', 'otp', 'mfa']);
    expect(claims['acr']).toBe(ACR_MFA);
    expect(errors.filter((error) => !error.startsWith('401 POST /interaction/'))).toEqual([]);
    await context.close();
  });

  it('an upstream-only user without a second factor is signed in directly: amr fed, acr pwd', async () => {
    const { page, context, errors } = await newBrowser(h);
    const request = await startSignIn(h, page, { upstream: 'google' });
    await atGoogle(page, google, 'erin');
    const claims = await idTokenAt(h, page, request);
    expect(claims['amr']).toEqual(['fed']);
    expect(claims['acr']).toBe(ACR_PWD);
    expect(errors).toEqual([]);
    await context.close();
  });
});
