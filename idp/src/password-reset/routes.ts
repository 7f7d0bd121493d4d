import Router from '@koa/router';
import { z } from 'zod';
import type { RecordEvent } from '../audit/record-event.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { answerPage } from '../http/pages.ts';
import type { Logger } from '../logger.ts';
import { RateLimited, type Counter, type LoginLimits } from '../security/limits.ts';
import type { AccountTokens } from '../users/account-tokens.ts';
import { emailSchema } from '../users/accounts.ts';
import { PasswordRejected } from '../users/passwords.ts';
import type { User } from '../users/queries.ts';
import { ResetLinkRejected, type PasswordReset } from './reset.ts';
import { forgotPasswordPage, passwordResetDonePage, resetPasswordPage, resetRejectedPage, resetRequestedPage } from './views.ts';

/**
 * Reset requests per IP (over it: 429), and per address (over it: the same answer, but no mail, so
 * nobody can fill a mailbox with reset links).
 */
export interface ResetLimits {
  ip: Counter<'reset-ip'>;
  address: Counter<'reset-address'>;
}

export interface PasswordResetRouteDependencies {
  /** The rules: mailing a link, and the new password it sets. */
  reset: PasswordReset;
  /** Checked before the page that asks for the new password is shown. */
  tokens: AccountTokens;
  limits: ResetLimits;
  /** A reset clears the account's failed sign-in count: the owner proved they hold the address. */
  loginLimits: LoginLimits;
  recordEvent: RecordEvent;
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
 * Forgot password (`/forgot-password`), the mailed reset link (`/reset-password`) and the link an
 * administrator hands a user created without a password (`/set-password`). A reset request
 * answers the same page at once for every address: looking the address up, writing the token and
 * mailing happen after the answer, so neither the text nor the time says whether an account exists.
 */
export function passwordResetRoutes(deps: PasswordResetRouteDependencies): Router {
  const router = new Router();
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
        await deps.recordEvent({ ...origin, type: 'password.reset_rate_limited', outcome: 'failure', details: { limit: 'ip' } });
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
      const addressLimited = () =>
        deps.limits.address.spend({ email: email.data }).then(
          () => false,
          (error: unknown) => {
            if (error instanceof RateLimited) return true;
            throw error;
          },
        );
      deps.reset.mailResetLink(email.data, origin, addressLimited).catch((error: unknown) => deps.log.error({ err: error, requestId }, 'password reset request failed'));
    });
    answerPage(ctx, 200, resetRequestedPage({ loginUrl }));
  });

  // A reset link, and the link with which a user an administrator created sets a first password:
  // the same form and rules, spending its own kind of token.
  for (const [path, purpose] of [['/reset-password', 'reset_password'], ['/set-password', 'set_password']] as const) {
    const first = purpose === 'set_password';
    router.get(path, async (ctx) => {
      const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
      const rejected = await deps.tokens.check(token, purpose);
      if (rejected) return answerPage(ctx, 400, resetRejectedPage(rejected, { first }));
      answerPage(ctx, 200, resetPasswordPage({ csrf: issueCsrfToken(ctx), token, first }));
    });

    router.post(path, resetForm, async (ctx) => {
      const form = resetForm.fieldsOf(ctx);
      let user: User;
      try {
        user = await deps.reset.completeReset(form.token, form.password, requestOrigin(ctx, deps.clientIp), purpose);
      } catch (error) {
        if (error instanceof ResetLinkRejected) return answerPage(ctx, 400, resetRejectedPage(error.reason, { first }));
        if (!(error instanceof PasswordRejected)) throw error;
        return answerPage(ctx, 400, resetPasswordPage({ csrf: issueCsrfToken(ctx), token: form.token, first, error: `Choose another password: ${error.message}.` }));
      }
      // The reset is done either way: a limits store that is down must not turn it into an error page.
      await deps.loginLimits.accountRecovered(user.email).catch((error: unknown) => deps.log.warn({ err: error, userId: user.id }, 'could not clear the sign-in count after a reset'));
      answerPage(ctx, 200, passwordResetDonePage({ first }));
    });
  }

  return router;
}
