import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { AuditLog } from '../audit/log.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { badRequest, HttpError } from '../http/errors.ts';
import { answerPage } from '../http/pages.ts';
import type { Logger } from '../logger.ts';
import { alreadyRegisteredMail, verificationMail } from '../mail/templates.ts';
import { sendInBackground, type Mail, type Mailer } from '../mail/transport.ts';
import { resetPasswordPage } from '../password-reset/views.ts';
import { RateLimited, type Counter, type LoginLimits } from '../security/limits.ts';
import type { AccountTokens, TokenRejection } from '../users/account-tokens.ts';
import { emailSchema, nameSchema } from '../users/accounts.ts';
import { reauthenticate } from '../users/reauthentication.ts';
import { checkPasswordRules, PasswordRejected, type PasswordHasher } from '../users/passwords.ts';
import { isAddressTaken, type User, type UserQueries } from '../users/queries.ts';
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
  issuer: string;
  mailer: Mailer;
  tokens: AccountTokens;
  provider: () => Provider;
  users: UserQueries;
  hasher: PasswordHasher;
  /** Confirming an unverified address takes the account's password, under the sign-in limits. */
  loginLimits: LoginLimits;
  audit: AuditLog;
  clientIp: ClientIp;
  log: Logger;
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
  const verifyUrl = (token: string) => `${deps.issuer}/verify-email?token=${encodeURIComponent(token)}`;

  const sendLater = (mail: Mail, kind: string) => sendInBackground(deps.mailer, mail, deps.log, kind);

  async function sendVerification(ctx: Context, user: { id: string; email: string; name: string }, clientId: string | undefined, reason: string) {
    const token = await deps.tokens.issue('verify_email', { userId: user.id });
    sendLater(verificationMail(user.email, user.name, verifyUrl(token)), 'verification');
    await deps.audit.record({ ...requestOrigin(ctx, deps.clientIp), type: 'email.verification_sent', outcome: 'success', userId: user.id, clientId, details: { reason } });
  }

  const resendLink = (ctx: Context) => ({ kind: 'verification' as const, resend: { action: '/verify-email/resend', csrf: issueCsrfToken(ctx) } });

  /** The valid invitation this browser carries, in invite mode. */
  async function invitation(ctx: Context): Promise<{ token: string; email: string } | undefined> {
    const token = ctx.cookies.get(INVITATION_COOKIE, { signed: true });
    if (!token) return undefined;
    const email = await deps.tokens.invitationFor(token);
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
        await deps.audit.record({ ...origin, type: 'signup.rate_limited', outcome: 'failure', details: { limit: 'ip' } });
      }
      throw error;
    }

    const again = (error: string) =>
      answerPage(ctx, 400, signupPage({
        action: `/interaction/${details.uid}/signup`,
        loginUrl: `/interaction/${details.uid}`,
        csrf: issueCsrfToken(ctx),
        clientName,
        email: form.email,
        name: form.name,
        error,
      }));
    const email = emailSchema.safeParse(form.email);
    const name = nameSchema.safeParse(form.name);
    if (!email.success) return again('Enter a valid email address.');
    if (!name.success) return again('Your name must be at most 200 characters.');
    if (invited && invited.email.toLowerCase() !== email.data.toLowerCase()) {
      return again('Use the address your invitation was sent to.');
    }
    try {
      checkPasswordRules(form.password, { email: email.data, name: name.data });
    } catch (error) {
      if (error instanceof PasswordRejected) return again(`Choose another password: ${error.message}.`);
      throw error;
    }

    if (invited) {
      const spent = await deps.tokens.redeem(invited.token, 'invitation');
      ctx.cookies.set(INVITATION_COOKIE, null, { signed: true, path: '/' });
      if ('rejected' in spent) throw invitationRequired();
    }

    // Hashed either way, so an existing address costs the same time as a new one.
    const passwordHash = await deps.hasher.hash(form.password);
    const existing = await deps.users.findByEmail(email.data);
    const created = existing ? undefined : await insertUnlessTaken(deps.users, { email: email.data, name: name.data, passwordHash });
    if (!created) {
      const owner = existing ?? (await deps.users.findByEmail(email.data));
      sendLater(alreadyRegisteredMail(email.data, deps.issuer), 'already registered');
      await deps.audit.record({ ...origin, type: 'signup.existing_address', outcome: 'failure', userId: owner?.id });
    } else {
      deps.log.info({ event: 'signup.completed', requestId: ctx.state['requestId'], userId: created.id });
      await deps.audit.record({ ...origin, type: 'signup.completed', outcome: 'success', userId: created.id, details: { invited: Boolean(invited) } });
      await sendVerification(ctx, created, clientId, 'signup');
      // Not a sign-in: only what "Resend the email" needs to find the new account.
      await provider.interactionResult(ctx.req, ctx.res, { signup: { accountId: created.id } }, { mergeWithLastSubmission: false });
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
    const user = accountId ? await deps.users.findById(accountId) : undefined;
    if (user && !user.email_verified && !user.disabled_at) await sendVerification(ctx, user, clientId, 'resend');
    answerPage(ctx, 200, checkEmailPage({
      continueAction: `/interaction/${details.uid}/signup/continue`,
      resendAction: `/interaction/${details.uid}/signup/resend`,
      csrf: issueCsrfToken(ctx),
      notice: 'If there is an address to verify, we sent a new message. Earlier links still work until they expire.',
    }));
  });

  /** The account a verification link is for, if the link can still be used. */
  async function accountToVerify(token: string): Promise<{ user: User } | { rejected: TokenRejection }> {
    const rejected = await deps.tokens.check(token, 'verify_email');
    if (rejected) return { rejected };
    const userId = await deps.tokens.userOf(token);
    const user = userId ? await deps.users.findById(userId) : undefined;
    return user && !user.disabled_at ? { user } : { rejected: 'unknown' };
  }

  const verifyPage = (ctx: Context, token: string, user: User, error?: string) =>
    verifyEmailPage({ csrf: issueCsrfToken(ctx), token, passwordRequired: !user.email_verified, ...(error ? { error } : {}) });

  async function refuseLink(ctx: Context, reason: TokenRejection) {
    await deps.audit.record({ ...requestOrigin(ctx, deps.clientIp), type: 'email.verification_rejected', outcome: 'failure', details: { reason } });
    answerPage(ctx, 400, verificationRejectedPage(reason, resendLink(ctx)));
  }

  router.get('/verify-email', async (ctx) => {
    const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
    const found = await accountToVerify(token);
    if ('rejected' in found) return answerPage(ctx, 400, verificationRejectedPage(found.rejected, resendLink(ctx)));
    answerPage(ctx, 200, verifyPage(ctx, token, found.user));
  });

  router.post('/verify-email', verifyForm, async (ctx) => {
    const form = verifyForm.fieldsOf(ctx);
    const origin = requestOrigin(ctx, deps.clientIp);
    const found = await accountToVerify(form.token);
    if ('rejected' in found) return refuseLink(ctx, found.rejected);
    const { user } = found;
    if (!user.email_verified) {
      if (!form.password) return answerPage(ctx, 400, verifyPage(ctx, form.token, user, 'Enter the password of this account, or choose a new password below.'));
      const check = await reauthenticate(ctx, deps, user, form.password);
      if (!check.ok) {
        await deps.audit.record({ ...origin, type: 'email.verification_rejected', outcome: 'failure', userId: user.id, details: { reason: check.reason } });
        return answerPage(ctx, check.status, verifyPage(ctx, form.token, user, check.message));
      }
    }
    const spent = await deps.tokens.redeem(form.token, 'verify_email');
    if ('rejected' in spent) return refuseLink(ctx, spent.rejected);
    await deps.users.update(user.id, { emailVerified: true });
    await deps.audit.record({ ...origin, type: 'email.verified', outcome: 'success', userId: user.id, details: { confirmed_by: user.email_verified ? 'link' : 'password' } });
    answerPage(ctx, 200, emailVerifiedPage());
  });

  // "Set a new password instead": the link proves the mailbox, as a reset link would; it is spent for
  // one, and the reset (password/reset routes) replaces the password, ends every session and verifies.
  router.post('/verify-email/new-password', verifyInsteadForm, async (ctx) => {
    const form = verifyInsteadForm.fieldsOf(ctx);
    const found = await accountToVerify(form.token);
    if ('rejected' in found) return refuseLink(ctx, found.rejected);
    const spent = await deps.tokens.redeem(form.token, 'verify_email');
    if ('rejected' in spent) return refuseLink(ctx, spent.rejected);
    const resetToken = await deps.tokens.issue('reset_password', { userId: found.user.id });
    await deps.audit.record({ ...requestOrigin(ctx, deps.clientIp), type: 'password.reset_requested', outcome: 'success', userId: found.user.id, details: { via: 'verification_link' } });
    answerPage(ctx, 200, resetPasswordPage({ csrf: issueCsrfToken(ctx), token: resetToken }));
  });

  // A new link for the account signed in in this browser (the provider's session), if it is unverified.
  router.post('/verify-email/resend', buttonForm, async (ctx) => {
    await deps.limits.resend.spend({ ip: deps.clientIp(ctx.req) });
    const session = await deps.provider().Session.get(ctx as never);
    const user = session.accountId ? await deps.users.findById(session.accountId) : undefined;
    const sent = Boolean(user && !user.email_verified && !user.disabled_at);
    if (user && sent) await sendVerification(ctx, user, undefined, 'resend');
    answerPage(ctx, 200, resendAnswerPage(sent));
  });

  router.get('/invitation', async (ctx) => {
    if (deps.mode !== 'invite') throw notFound();
    const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
    const email = await deps.tokens.invitationFor(token);
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

async function insertUnlessTaken(users: UserQueries, user: { email: string; name: string; passwordHash: string }) {
  try {
    return await users.insert({ ...user, emailVerified: false });
  } catch (error) {
    // Two sign-ups for one address at once: the second is an existing address.
    if (isAddressTaken(error)) return undefined;
    throw error;
  }
}
