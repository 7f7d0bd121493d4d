import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { RecordEvent } from '../audit/record-event.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { badRequest, HttpError } from '../http/errors.ts';
import { answerPage } from '../http/pages.ts';
import { resetPasswordPage } from '../password-reset/views.ts';
import { RateLimited, type Counter, type LoginLimits } from '../security/limits.ts';
import type { AccountTokens, TokenRejection } from '../users/account-tokens.ts';
import { reauthenticate } from '../users/reauthentication.ts';
import type { PasswordHasher } from '../users/passwords.ts';
import type { User } from '../users/queries.ts';
import type { Registration } from './registration.ts';
import { checkEmailPage, emailVerifiedPage, invitationPage, resendAnswerPage, signupPage, verificationRejectedPage, verifyEmailPage } from './views.ts';

/** The invitation an invitee opened, until they create their account (signed, HttpOnly). */
export const INVITATION_COOKIE = 'jobswipe.invitation';

export interface SignupOptions {
  mode: 'open' | 'invite' | 'closed';
  unverifiedSignIn: boolean;
  /** Sign-ups per IP, and verification mails asked for again per IP. */
  limits: { signup: Counter<'signup-ip'>; resend: Counter<'verify-resend-ip'> };
}

interface SignupDependencies extends SignupOptions {
  registration: Registration;
  provider: () => Provider;
  hasher: PasswordHasher;
  /** Confirming an unverified address takes the account's password, under the sign-in limits. */
  loginLimits: LoginLimits;
  recordEvent: RecordEvent;
  clientIp: ClientIp;
}

const signupForm = formGuard(z.object({
  email: z.string().trim().max(1024),
  name: z.string().max(1024).default(''),
  password: z.string().max(1024),
}));
const buttonForm = formGuard(z.object({}));
const verifyForm = formGuard(z.object({ token: z.string().max(200), password: z.string().max(1024).optional() }));
const verifyInsteadForm = formGuard(z.object({ token: z.string().max(200) }));

const notFound = () => new HttpError(404, 'Page not found', 'Creating an account here is not available. Ask JobSwipe support for an account.');

/**
 * Sign-up inside an authorization request's interaction (`/interaction/:uid/signup`) and the email
 * verification links. The sign-up answer, and where its Continue leads (back to sign-in), are the same
 * for a new and an already registered address: the owner of an existing account is mailed instead.
 *
 * Whoever signs up chooses the password before the address is proven, so a verification link alone
 * does not verify an unverified account: its page asks for that password too, or replaces it (the
 * password reset, which ends every session), so an account someone else created with your address
 * never becomes verified with their password.
 */
export function signupRoutes(deps: SignupDependencies): Router {
  const router = new Router();
  const { registration } = deps;

  const resendLink = (ctx: Context) => ({ kind: 'verification' as const, resend: { action: '/verify-email/resend', csrf: issueCsrfToken(ctx) } });

  /** The valid invitation this browser carries, in invite mode. */
  async function invitation(ctx: Context): Promise<{ token: string; email: string } | undefined> {
    const token = ctx.cookies.get(INVITATION_COOKIE, { signed: true });
    if (!token) return undefined;
    const email = await registration.invitationFor(token);
    return email ? { token, email } : undefined;
  }

  async function loginDetails(ctx: Context) {
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const client = await provider.Client.find(String(details.params['client_id']));
    return { provider, details, clientName: client?.clientName ?? client?.clientId ?? 'this app', clientId: String(details.params['client_id'] ?? '') };
  }

  router.get('/interaction/:uid/signup', async (ctx) => {
    if (deps.mode === 'closed') throw notFound();
    const { details, clientName } = await loginDetails(ctx);
    if (details.prompt.name !== 'login') throw badRequest('You are already signed in. Go back to the app and continue.');
    const invited = deps.mode === 'invite' ? await invitation(ctx) : undefined;
    if (deps.mode === 'invite' && !invited) throw invitationRequired();
    answerPage(ctx, 200, signupPage({
      action: `/interaction/${details.uid}/signup`,
      loginUrl: `/interaction/${details.uid}`,
      csrf: issueCsrfToken(ctx),
      clientName,
      ...(invited ? { email: invited.email } : {}),
    }));
  });

  router.post('/interaction/:uid/signup', async (_ctx, next) => {
    // Closed sign-up has no form here at all: 404 before the form is read.
    if (deps.mode === 'closed') throw notFound();
    await next();
  }, signupForm, async (ctx) => {
    const form = signupForm.fieldsOf(ctx);
    const { provider, details, clientName, clientId } = await loginDetails(ctx);
    if (details.prompt.name !== 'login') throw badRequest('You are already signed in. Go back to the app and continue.');
    const origin = { ...requestOrigin(ctx, deps.clientIp), clientId };
    const invited = deps.mode === 'invite' ? await invitation(ctx) : undefined;
    if (deps.mode === 'invite' && !invited) throw invitationRequired();

    try {
      await deps.limits.signup.spend({ ip: origin.ip ?? 'unknown' });
    } catch (error) {
      if (error instanceof RateLimited) {
        await deps.recordEvent({ ...origin, type: 'signup.rate_limited', outcome: 'failure', details: { limit: 'ip' } });
      }
      throw error;
    }

    const outcome = await registration.signUp(form, { ...origin, invitation: invited });
    if (outcome.kind === 'refused') {
      return answerPage(ctx, 400, signupPage({
        action: `/interaction/${details.uid}/signup`,
        loginUrl: `/interaction/${details.uid}`,
        csrf: issueCsrfToken(ctx),
        clientName,
        email: form.email,
        name: form.name,
        error: outcome.message,
      }));
    }
    // An acceptable form spends the invitation, whatever became of it.
    if (invited) ctx.cookies.set(INVITATION_COOKIE, null, { signed: true, path: '/' });
    if (outcome.kind === 'invitation_rejected') throw invitationRequired();
    if (outcome.kind === 'created') {
      // Not a sign-in: only what "Resend the email" needs to find the new account.
      await provider.interactionResult(ctx.req, ctx.res, { signup: { accountId: outcome.user.id } }, { mergeWithLastSubmission: false });
    }
    answerPage(ctx, 200, checkEmailPage({
      continueAction: `/interaction/${details.uid}/signup/continue`,
      resendAction: `/interaction/${details.uid}/signup/resend`,
      csrf: issueCsrfToken(ctx),
    }));
  });

  router.post('/interaction/:uid/signup/continue', buttonForm, async (ctx) => {
    const { details } = await loginDetails(ctx);
    ctx.status = 303;
    // Back to sign-in, for a new account and an existing address alike: where it leads must not tell them apart.
    ctx.redirect(`/interaction/${details.uid}`);
  });

  router.post('/interaction/:uid/signup/resend', buttonForm, async (ctx) => {
    const { details, clientId } = await loginDetails(ctx);
    await deps.limits.resend.spend({ ip: deps.clientIp(ctx.req) });
    const accountId = (details.result?.['signup'] as { accountId?: string } | undefined)?.accountId;
    await registration.resendVerification(accountId, requestOrigin(ctx, deps.clientIp), clientId);
    answerPage(ctx, 200, checkEmailPage({
      continueAction: `/interaction/${details.uid}/signup/continue`,
      resendAction: `/interaction/${details.uid}/signup/resend`,
      csrf: issueCsrfToken(ctx),
      notice: 'If there is an address to verify, we sent a new message. Earlier links still work until they expire.',
    }));
  });

  const verifyPage = (ctx: Context, token: string, user: User, error?: string) =>
    verifyEmailPage({ csrf: issueCsrfToken(ctx), token, passwordRequired: !user.email_verified, ...(error ? { error } : {}) });

  const refusedLink = (ctx: Context, reason: TokenRejection) => answerPage(ctx, 400, verificationRejectedPage(reason, resendLink(ctx)));

  router.get('/verify-email', async (ctx) => {
    const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
    const found = await registration.accountToVerify(token);
    if ('rejected' in found) return refusedLink(ctx, found.rejected);
    answerPage(ctx, 200, verifyPage(ctx, token, found.user));
  });

  router.post('/verify-email', verifyForm, async (ctx) => {
    const form = verifyForm.fieldsOf(ctx);
    const origin = requestOrigin(ctx, deps.clientIp);
    const found = await registration.accountToVerify(form.token);
    if ('rejected' in found) return refusedLink(ctx, (await registration.refuseLink(found.rejected, origin)).rejected);
    const { user } = found;
    if (!user.email_verified) {
      if (!form.password) return answerPage(ctx, 400, verifyPage(ctx, form.token, user, 'Enter the password of this account, or choose a new password below.'));
      const check = await reauthenticate(ctx, deps, user, form.password);
      if (!check.ok) {
        await deps.recordEvent({ ...origin, type: 'email.verification_rejected', outcome: 'failure', userId: user.id, details: { reason: check.reason } });
        return answerPage(ctx, check.status, verifyPage(ctx, form.token, user, check.message));
      }
    }
    const confirmed = await registration.confirmAddress(form.token, user, origin);
    if ('rejected' in confirmed) return refusedLink(ctx, confirmed.rejected);
    answerPage(ctx, 200, emailVerifiedPage());
  });

  // "Set a new password instead": the reset page, with a reset link the verification link was spent for.
  router.post('/verify-email/new-password', verifyInsteadForm, async (ctx) => {
    const form = verifyInsteadForm.fieldsOf(ctx);
    const reset = await registration.resetInsteadOfVerifying(form.token, requestOrigin(ctx, deps.clientIp));
    if ('rejected' in reset) return refusedLink(ctx, reset.rejected);
    answerPage(ctx, 200, resetPasswordPage({ csrf: issueCsrfToken(ctx), token: reset.resetToken }));
  });

  // A new link for the account signed in in this browser (the provider's session), if it is unverified.
  router.post('/verify-email/resend', buttonForm, async (ctx) => {
    await deps.limits.resend.spend({ ip: deps.clientIp(ctx.req) });
    const session = await deps.provider().Session.get(ctx as never);
    const sent = await registration.resendVerification(session.accountId, requestOrigin(ctx, deps.clientIp));
    answerPage(ctx, 200, resendAnswerPage(sent));
  });

  router.get('/invitation', async (ctx) => {
    if (deps.mode !== 'invite') throw notFound();
    const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
    const email = await registration.invitationFor(token);
    if (!email) return answerPage(ctx, 400, verificationRejectedPage('unknown', { kind: 'invitation' }));
    ctx.cookies.set(INVITATION_COOKIE, token, {
      signed: true,
      httpOnly: true,
      sameSite: 'lax',
      secure: ctx.secure,
      path: '/',
      maxAge: 24 * 60 * 60 * 1000,
      overwrite: true,
    });
    answerPage(ctx, 200, invitationPage(email));
  });

  return router;
}

/** Whether a browser carries a valid invitation (the login page shows "Create account" then, in invite mode). */
export function invitationCheck(tokens: AccountTokens): (ctx: Context) => Promise<boolean> {
  return async (ctx) => {
    const token = ctx.cookies.get(INVITATION_COOKIE, { signed: true });
    return token ? (await tokens.invitationFor(token)) !== undefined : false;
  };
}

function invitationRequired(): HttpError {
  return new HttpError(403, 'Invitation required', 'Creating an account here needs an invitation. Open the invitation link you were sent, then try again.');
}
