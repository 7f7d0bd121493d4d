import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { RecordEvent } from '../audit/record-event.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { HttpError } from '../http/errors.ts';
import { formGuard } from '../http/form-guard.ts';
import { answerPage } from '../http/pages.ts';
import { RateLimited, type LoginLimits } from '../security/limits.ts';
import type { PasswordHasher } from '../users/passwords.ts';
import type { User, UserQueries } from '../users/queries.ts';
import { reauthenticate } from '../users/reauthentication.ts';
import { PasskeyRejected, type Passkeys } from './passkeys.ts';
import { TotpRefused, type Totp } from './totp.ts';
import { recoveryCodesPage, totpSetupPage } from './views.ts';
import { takeChallenge } from './webauthn-challenge.ts';

export interface MfaAccountDependencies {
  provider: () => Provider;
  users: UserQueries;
  totp: Totp;
  passkeys: Passkeys;
  hasher: PasswordHasher;
  /** Wrong passwords and wrong codes count like failed sign-ins (per IP and per account). */
  loginLimits: LoginLimits;
  clientIp: ClientIp;
  recordEvent: RecordEvent;
}

const setupForm = formGuard(z.object({ current_password: z.string().min(1).max(1000) }));
const enableForm = formGuard(z.object({ code: z.string().trim().min(1).max(100) }));
const disableForm = formGuard(z.object({ current_password: z.string().min(1).max(1000), code: z.string().trim().min(1).max(100) }));
const addPasskeyForm = formGuard(z.object({ current_password: z.string().min(1).max(1000), name: z.string().trim().max(100), credential: z.string().max(20_000) }));
const buttonForm = formGuard(z.object({}));
const credentialId = z.string().regex(/^[A-Za-z0-9_-]{1,1400}$/);

const WRONG_CODE = 'That code is not right. Enter the code your app shows now. Nothing was changed.';

/** The signed-in user behind this browser's provider session, or a 401 page. */
async function signedInUser(ctx: Context, deps: MfaAccountDependencies): Promise<{ user: User; sessionUid: string }> {
  const session = await deps.provider().Session.get(ctx as never);
  const user = session.accountId ? await deps.users.findOwn(session.accountId) : undefined;
  if (!user || user.disabled_at) throw new HttpError(401, 'You are signed out', 'Your session has ended. Open your account page and sign in again.');
  return { user, sessionUid: session.uid };
}

function done(ctx: Context, notice: string) {
  ctx.status = 303;
  ctx.redirect(`/account?notice=${notice}`);
}

/** /account's two-factor section: setting up and turning off the authenticator app, adding and removing passkeys. */
export function mfaAccountRoutes(deps: MfaAccountDependencies): Router {
  const router = new Router({ prefix: '/account' });

  const event = (ctx: Context, holder: { user: User; sessionUid: string }) => ({ ...requestOrigin(ctx, deps.clientIp), userId: holder.user.id, sessionId: holder.sessionUid });

  router.post('/two-factor/totp/setup', setupForm, async (ctx) => {
    const form = setupForm.fieldsOf(ctx);
    const holder = await signedInUser(ctx, deps);
    const check = await reauthenticate(ctx, deps, holder.user, form.current_password);
    if (!check.ok) {
      await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.totp_enabled', outcome: 'failure', details: { reason: check.reason } });
      throw new HttpError(check.status, 'Two-factor authentication was not set up', `${check.message} Go back to your account page and try again.`);
    }
    let setup;
    try {
      setup = await deps.totp.beginSetup(holder.user);
    } catch (error) {
      if (!(error instanceof TotpRefused)) throw error;
      throw new HttpError(409, 'Already on', `${error.message} Go back to your account page.`);
    }
    answerPage(ctx, 200, totpSetupPage({ setup, action: '/account/two-factor/totp/enable', csrf: issueCsrfToken(ctx), back: true }));
  });

  router.post('/two-factor/totp/enable', enableForm, async (ctx) => {
    const { code } = enableForm.fieldsOf(ctx);
    const holder = await signedInUser(ctx, deps);
    const codes = await deps.totp.enable(holder.user, code);
    if (!codes) {
      await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.totp_enabled', outcome: 'failure', details: { reason: 'wrong_code' } });
      const setup = await deps.totp.pendingSetup(holder.user);
      if (!setup) throw new HttpError(400, 'The set-up expired', 'Setting up the app took too long. Go back to your account page and start again.');
      answerPage(ctx, 400, totpSetupPage({ setup, action: '/account/two-factor/totp/enable', csrf: issueCsrfToken(ctx), error: WRONG_CODE, back: true }));
      return;
    }
    await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.totp_enabled', outcome: 'success' });
    answerPage(ctx, 200, recoveryCodesPage({ codes, next: undefined }));
  });

  /** Turning the app off needs the password and a code (from the app, or a recovery code). */
  router.post('/two-factor/totp/disable', disableForm, async (ctx) => {
    const form = disableForm.fieldsOf(ctx);
    const holder = await signedInUser(ctx, deps);
    const refuse = async (status: number, reason: string, message: string) => {
      await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.totp_disabled', outcome: 'failure', details: { reason } });
      throw new HttpError(status, 'Two-factor authentication is still on', `${message} Go back to your account page and try again.`);
    };
    const check = await reauthenticate(ctx, deps, holder.user, form.current_password);
    if (!check.ok) return refuse(check.status, check.reason, check.message);
    let attempt: Awaited<ReturnType<LoginLimits['reserve']>>;
    try {
      attempt = await deps.loginLimits.reserve(deps.clientIp(ctx.req), holder.user.email);
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      ctx.set(error.headers);
      return refuse(429, 'rate_limited', error.message);
    }
    const code = await deps.totp.check(holder.user.id, form.code);
    if (!code.ok) return refuse(401, code.reason, WRONG_CODE);
    await attempt.passed();
    await deps.totp.disable(holder.user.id);
    await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.totp_disabled', outcome: 'success', details: { method: code.method } });
    done(ctx, 'totp-off');
  });

  router.post('/passkeys', addPasskeyForm, async (ctx) => {
    const form = addPasskeyForm.fieldsOf(ctx);
    const holder = await signedInUser(ctx, deps);
    const challenge = takeChallenge(ctx, 'register', holder.user.id);
    const refuse = async (status: number, reason: string, message: string) => {
      await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.passkey_added', outcome: 'failure', details: { reason } });
      throw new HttpError(status, 'The passkey was not added', `${message} Go back to your account page and try again.`);
    };
    const check = await reauthenticate(ctx, deps, holder.user, form.current_password);
    if (!check.ok) return refuse(check.status, check.reason, check.message);
    if (!challenge) return refuse(400, 'no_challenge', 'The page was open too long.');
    try {
      const passkey = await deps.passkeys.register(holder.user.id, form.credential, challenge, form.name || 'Passkey');
      await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.passkey_added', outcome: 'success', details: { passkey: passkey.id.slice(0, 16) } });
    } catch (error) {
      if (!(error instanceof PasskeyRejected)) throw error;
      return refuse(400, 'rejected', 'Your browser’s passkey could not be checked.');
    }
    done(ctx, 'passkey-added');
  });

  router.post('/passkeys/:id/remove', buttonForm, async (ctx) => {
    const holder = await signedInUser(ctx, deps);
    const id = credentialId.safeParse(ctx.params['id']);
    const removed = id.success && (await deps.passkeys.remove(holder.user.id, id.data));
    if (removed) await deps.recordEvent({ ...event(ctx, holder), type: 'mfa.passkey_removed', outcome: 'success', details: { passkey: id.data.slice(0, 16) } });
    done(ctx, removed ? 'passkey-removed' : 'nothing-changed');
  });

  return router;
}
