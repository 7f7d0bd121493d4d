import Router from '@koa/router';
import { z } from 'zod';
import type { AuditLog } from '../audit/log.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { answerPage } from '../http/pages.ts';
import type { Logger } from '../logger.ts';
import { passwordResetMail, passwordResetNotice } from '../mail/templates.ts';
import { sendInBackground, type Mailer } from '../mail/transport.ts';
import { RateLimited, type Counter, type LoginLimits } from '../security/limits.ts';
import type { SessionService } from '../sessions/service.ts';
import type { AccountTokens } from '../users/account-tokens.ts';
import { emailSchema } from '../users/accounts.ts';
import { checkPasswordRules, PasswordRejected, type PasswordHasher } from '../users/passwords.ts';
import type { UserQueries } from '../users/queries.ts';
import { forgotPasswordPage, passwordResetDonePage, resetPasswordPage, resetRejectedPage, resetRequestedPage } from './views.ts';

/**
 * Reset requests per IP (over it: 429), and per address (over it: the same answer, but no mail, so
 * nobody can fill a mailbox with reset links).
 */
export interface ResetLimits {
  ip: Counter<'reset-ip'>;
  address: Counter<'reset-address'>;
}

export interface PasswordResetDependencies {
  issuer: string;
  users: UserQueries;
  hasher: PasswordHasher;
  sessions: SessionService;
  tokens: AccountTokens;
  mailer: Mailer;
  limits: ResetLimits;
  /** A reset clears the account's failed sign-in count: the owner proved they hold the address. */
  loginLimits: LoginLimits;
  audit: AuditLog;
  clientIp: ClientIp;
  log: Logger;
}

const interactionUid = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const forgotForm = formGuard(z.object({
  email: z.string().trim().max(1024),
  interaction: interactionUid.optional().catch(undefined),
}));
const resetForm = formGuard(z.object({ token: z.string().max(200), password: z.string().max(1024) }));

/** The login page this request came from (for "Back to sign in"), if it named a well-formed one. */
const loginUrlOf = (uid: string | undefined) => (uid ? `/interaction/${uid}` : undefined);

/**
 * Forgot password (`/forgot-password`) and the mailed reset link (`/reset-password`). The request
 * answers the same page at once for every address: looking the address up, writing the token and
 * mailing happen after the answer, so neither the text nor the time says whether an account exists.
 */
export function passwordResetRoutes(deps: PasswordResetDependencies): Router {
  const router = new Router();
  const resetUrl = (token: string) => `${deps.issuer}/reset-password?token=${encodeURIComponent(token)}`;
  const forgotUrl = `${deps.issuer}/forgot-password`;

  /** Everything a request does that depends on the address: run after the answer is sent. */
  async function mailResetLink(email: string, origin: ReturnType<typeof requestOrigin>): Promise<void> {
    const user = await deps.users.findByEmail(email);
    try {
      await deps.limits.address.spend({ email });
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      await deps.audit.record({ ...origin, type: 'password.reset_rate_limited', outcome: 'failure', userId: user?.id, details: { limit: 'address' } });
      return;
    }
    if (!user || user.disabled_at) {
      await deps.audit.record({ ...origin, type: 'password.reset_requested', outcome: 'failure', userId: user?.id, details: { reason: user ? 'disabled' : 'unknown_account' } });
      return;
    }
    const token = await deps.tokens.issue('reset_password', { userId: user.id });
    sendInBackground(deps.mailer, passwordResetMail(user.email, user.name, resetUrl(token)), deps.log, 'password reset');
    await deps.audit.record({ ...origin, type: 'password.reset_requested', outcome: 'success', userId: user.id });
  }

  router.get('/forgot-password', (ctx) => {
    const uid = interactionUid.safeParse(ctx.query['interaction']);
    const interaction = uid.success ? uid.data : undefined;
    answerPage(ctx, 200, forgotPasswordPage({ csrf: issueCsrfToken(ctx), interaction, loginUrl: loginUrlOf(interaction) }));
  });

  router.post('/forgot-password', forgotForm, async (ctx) => {
    const form = forgotForm.fieldsOf(ctx);
    const origin = requestOrigin(ctx, deps.clientIp);
    const loginUrl = loginUrlOf(form.interaction);
    try {
      await deps.limits.ip.spend({ ip: origin.ip ?? 'unknown' });
    } catch (error) {
      if (error instanceof RateLimited) {
        await deps.audit.record({ ...origin, type: 'password.reset_rate_limited', outcome: 'failure', details: { limit: 'ip' } });
      }
      throw error;
    }
    const email = emailSchema.safeParse(form.email);
    if (!email.success) {
      // About the text typed, never about an account: the same for every address of that shape.
      answerPage(ctx, 400, forgotPasswordPage({ csrf: issueCsrfToken(ctx), interaction: form.interaction, loginUrl, email: form.email, error: 'Enter a valid email address.' }));
      return;
    }
    const requestId = ctx.state['requestId'] as string | undefined;
    setImmediate(() => {
      mailResetLink(email.data, origin).catch((error: unknown) => deps.log.error({ err: error, requestId }, 'password reset request failed'));
    });
    answerPage(ctx, 200, resetRequestedPage({ loginUrl }));
  });

  router.get('/reset-password', async (ctx) => {
    const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
    const rejected = await deps.tokens.check(token, 'reset_password');
    if (rejected) return answerPage(ctx, 400, resetRejectedPage(rejected));
    answerPage(ctx, 200, resetPasswordPage({ csrf: issueCsrfToken(ctx), token }));
  });

  router.post('/reset-password', resetForm, async (ctx) => {
    const form = resetForm.fieldsOf(ctx);
    const origin = requestOrigin(ctx, deps.clientIp);
    const refuse = async (reason: 'unknown' | 'used' | 'expired') => {
      const userId = await deps.tokens.userOf(form.token);
      await deps.audit.record({ ...origin, type: 'password.reset_rejected', outcome: 'failure', userId, details: { reason } });
      answerPage(ctx, 400, resetRejectedPage(reason));
    };
    // The link is checked first, and spent only once the new password is acceptable.
    const rejected = await deps.tokens.check(form.token, 'reset_password');
    if (rejected) return refuse(rejected);
    // The rules refuse a password built from the account's own address or name, so look it up first.
    const ownerId = await deps.tokens.userOf(form.token);
    const owner = ownerId ? await deps.users.findById(ownerId) : undefined;
    if (!owner) return refuse('unknown');
    try {
      checkPasswordRules(form.password, { email: owner.email, name: owner.name });
    } catch (error) {
      if (!(error instanceof PasswordRejected)) throw error;
      return answerPage(ctx, 400, resetPasswordPage({ csrf: issueCsrfToken(ctx), token: form.token, error: `Choose another password: ${error.message}.` }));
    }
    const passwordHash = await deps.hasher.hash(form.password);
    const spent = await deps.tokens.redeem(form.token, 'reset_password');
    if ('rejected' in spent) return refuse(spent.rejected);
    const user = spent.userId ? await deps.users.findById(spent.userId) : undefined;
    if (!user || user.disabled_at) return refuse('unknown');

    // The mailed link proves the address too. Then every session and every app's tokens end.
    await deps.users.update(user.id, { passwordHash, emailVerified: true });
    const otherLinks = await deps.tokens.revokeFor(user.id, ['reset_password']);
    const outcome = await deps.sessions.revokeAll(user.id, 'password reset');
    // The reset is done either way: a limits store that is down must not turn it into an error page.
    await deps.loginLimits.accountRecovered(user.email).catch((error: unknown) => deps.log.warn({ err: error, userId: user.id }, 'could not clear the sign-in count after a reset'));
    sendInBackground(deps.mailer, passwordResetNotice(user.email, user.name, forgotUrl), deps.log, 'password reset notice');
    deps.log.info({ event: 'password.reset_completed', userId: user.id, sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked }, 'password reset');
    await deps.audit.record({
      ...origin,
      type: 'password.reset_completed',
      outcome: 'success',
      userId: user.id,
      details: { sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked, other_links: otherLinks },
    });
    answerPage(ctx, 200, passwordResetDonePage());
  });

  return router;
}
