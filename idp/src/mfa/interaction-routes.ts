import Router from '@koa/router';
import { completeLogin } from '../interactions/complete-login.ts';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { RecordEvent } from '../audit/record-event.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { badRequest } from '../http/errors.ts';
import { formGuard } from '../http/form-guard.ts';
import { answerPage } from '../http/pages.ts';
import { cspNonceOf } from '../http/security-headers.ts';
import { loginResult, withSecondFactor, type AuthenticationMethod } from '../interactions/sign-in-result.ts';
import { RateLimited, type LoginLimits } from '../security/limits.ts';
import type { UserQueries } from '../users/queries.ts';
import { PasskeyRejected, type Passkeys } from './passkeys.ts';
import { firstStepOf, forgetFirstStep, rememberFirstStep, type PendingSignIn } from './pending-sign-in.ts';
import type { MfaService } from './service.ts';
import type { Totp } from './totp.ts';
import { recoveryCodesPage, secondFactorPage, totpSetupPage } from './views.ts';
import { keepChallenge, takeChallenge } from './webauthn-challenge.ts';

export interface MfaInteractionDependencies {
  provider: () => Provider;
  users: UserQueries;
  mfa: MfaService;
  totp: Totp;
  passkeys: Passkeys;
  /** Wrong codes count like wrong passwords: per IP and per account. */
  loginLimits: LoginLimits;
  clientIp: ClientIp;
  recordEvent: RecordEvent;
  /** Seconds the provider keeps an interaction (the first step is remembered as long). */
  interactionSeconds: number;
}

export const WRONG_CODE = 'That code is not right. Enter the code your app shows now, or a recovery code.';
export const REUSED_CODE = 'That code was used already. Wait for the next code in your app and enter it.';
const NO_FIRST_STEP = 'Your sign-in timed out. Go back to the app and sign in again.';

const codeForm = formGuard(z.object({ code: z.string().trim().min(1).max(100) }));
const passkeyForm = formGuard(z.object({ credential: z.string().max(20_000) }));
const continueForm = formGuard(z.object({}));

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/**
 * The second step of a sign-in, inside the provider's interaction: a code or a passkey after the
 * first step (interactions/routes.ts), setting up an authenticator app when the app insists on two
 * factors and the user has none, and the login page's passwordless passkey.
 */
export function mfaInteractionRoutes(deps: MfaInteractionDependencies): Router {
  const router = new Router({ prefix: '/interaction/:uid' });

  async function loginInteraction(ctx: Context): Promise<InteractionDetails> {
    const details = await deps.provider().interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'login') throw badRequest('You are already signed in. Go back to the app and continue.');
    return details;
  }

  function firstStep(ctx: Context, details: InteractionDetails): PendingSignIn {
    const pending = firstStepOf(ctx, details.uid);
    if (!pending) throw badRequest(NO_FIRST_STEP);
    return pending;
  }

  const origin = (ctx: Context, details: InteractionDetails) => ({
    ...requestOrigin(ctx, deps.clientIp),
    clientId: String(details.params['client_id'] ?? ''),
    sessionId: details.session?.uid,
  });

  async function clientName(details: InteractionDetails): Promise<string> {
    const client = await deps.provider().Client.find(String(details.params['client_id']));
    return client?.clientName ?? client?.clientId ?? 'this app';
  }

  async function signIn(ctx: Context, details: InteractionDetails, accountId: string, amr: AuthenticationMethod[]) {
    forgetFirstStep(ctx);
    const login = loginResult(accountId, amr);
    await deps.recordEvent({ ...origin(ctx, details), type: 'login.success', outcome: 'success', userId: accountId, details: { amr: login.amr.join(' '), acr: login.acr } });
    await completeLogin(ctx, deps.provider(), login);
  }

  async function showSecondFactor(ctx: Context, details: InteractionDetails, pending: PendingSignIn, status = 200, error?: string) {
    const factors = await deps.mfa.status(pending.accountId);
    let passkey: unknown;
    if (factors.passkeys > 0) {
      passkey = await deps.passkeys.authenticationOptions(pending.accountId);
      keepChallenge(ctx, 'authenticate', details.uid, (passkey as { challenge: string }).challenge);
    }
    answerPage(ctx, status, secondFactorPage({
      uid: details.uid,
      csrf: issueCsrfToken(ctx),
      clientName: await clientName(details),
      code: factors.totp || factors.recoveryCodes > 0,
      passkey,
      nonce: cspNonceOf(ctx),
      error,
    }));
  }

  router.get('/second-factor', async (ctx) => {
    const details = await loginInteraction(ctx);
    await showSecondFactor(ctx, details, firstStep(ctx, details));
  });

  router.post('/second-factor', codeForm, async (ctx) => {
    const { code } = codeForm.fieldsOf(ctx);
    const details = await loginInteraction(ctx);
    const pending = firstStep(ctx, details);
    const user = await deps.users.findById(pending.accountId);
    if (!user || user.disabled_at) throw badRequest(NO_FIRST_STEP);

    let attempt: Awaited<ReturnType<LoginLimits['reserve']>>;
    try {
      // Counted before the code is looked at, against the address and the account, as passwords are.
      attempt = await deps.loginLimits.reserve(deps.clientIp(ctx.req), user.email);
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      await deps.recordEvent({ ...origin(ctx, details), type: 'login.rate_limited', outcome: 'failure', userId: user.id, details: { limit: error.reported, retry_after: error.retryAfterSeconds, step: 'second_factor' } });
      ctx.set(error.headers);
      await showSecondFactor(ctx, details, pending, 429, error.message);
      return;
    }
    const check = await deps.totp.check(user.id, code);
    if (!check.ok) {
      await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.verified', outcome: 'failure', userId: user.id, details: { method: 'code', reason: check.reason } });
      await showSecondFactor(ctx, details, pending, 401, check.reason === 'reused_code' ? REUSED_CODE : WRONG_CODE);
      return;
    }
    await attempt.passed();
    await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.verified', outcome: 'success', userId: user.id, details: { method: check.method } });
    if (check.method === 'recovery_code') {
      await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.recovery_code_used', outcome: 'success', userId: user.id, details: { remaining: check.remaining } });
    }
    await signIn(ctx, details, user.id, withSecondFactor(pending.amr, ['otp']));
  });

  /** A passkey: the second step after a first one, or (from the login page, without one) the whole sign-in. */
  router.post('/passkey', passkeyForm, async (ctx) => {
    const { credential } = passkeyForm.fieldsOf(ctx);
    const details = await loginInteraction(ctx);
    const pending = firstStepOf(ctx, details.uid);
    const challenge = takeChallenge(ctx, 'authenticate', details.uid);
    const refuse = async (reason: string, userId?: string) => {
      await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.verified', outcome: 'failure', userId, details: { method: 'passkey', reason, second_step: pending !== undefined } });
      if (pending) {
        await showSecondFactor(ctx, details, pending, 401, 'That passkey did not sign you in. Try again, or use another way.');
        return;
      }
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}?passkey=failed`);
    };
    if (!challenge) return refuse('no_challenge', pending?.accountId);
    let signedIn: { userId: string };
    try {
      signedIn = await deps.passkeys.authenticate(credential, challenge, pending?.accountId);
    } catch (error) {
      if (!(error instanceof PasskeyRejected)) throw error;
      return refuse('rejected', pending?.accountId);
    }
    const user = await deps.users.findById(signedIn.userId);
    if (!user || user.disabled_at) return refuse('disabled', signedIn.userId);
    await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.verified', outcome: 'success', userId: user.id, details: { method: 'passkey', second_step: pending !== undefined } });
    await signIn(ctx, details, user.id, pending ? withSecondFactor(pending.amr, ['hwk', 'user']) : ['hwk', 'user']);
  });

  // The app insists on two factors and the user has none: an authenticator app is set up here, right
  // after the password (interactions/routes.ts sends only a fresh first step here, never a session).
  const enrolIntro = 'The app you are signing in to asks for two-factor authentication. Set up an authenticator app to continue.';

  /** Setting up is for a user with no factor at all: one with a factor gives it (a password must not replace it). */
  async function hasFactor(userId: string): Promise<boolean> {
    const factors = await deps.mfa.status(userId);
    return factors.totp || factors.passkeys > 0;
  }

  router.get('/enrol', async (ctx) => {
    const details = await loginInteraction(ctx);
    const pending = firstStep(ctx, details);
    const user = await deps.users.findById(pending.accountId);
    if (!user) throw badRequest(NO_FIRST_STEP);
    if (await hasFactor(user.id)) {
      ctx.redirect(`/interaction/${details.uid}/second-factor`);
      return;
    }
    // Always a new secret: a set-up left pending elsewhere (on /account) is not shown here.
    const setup = await deps.totp.beginSetup(user);
    answerPage(ctx, 200, totpSetupPage({ setup, action: `/interaction/${details.uid}/enrol`, csrf: issueCsrfToken(ctx), intro: enrolIntro }));
  });

  router.post('/enrol', codeForm, async (ctx) => {
    const { code } = codeForm.fieldsOf(ctx);
    const details = await loginInteraction(ctx);
    const pending = firstStep(ctx, details);
    const user = await deps.users.findById(pending.accountId);
    if (!user) throw badRequest(NO_FIRST_STEP);
    if (await hasFactor(user.id)) {
      ctx.status = 303;
      ctx.redirect(`/interaction/${details.uid}/second-factor`);
      return;
    }
    const codes = await deps.totp.enable(user, code);
    if (!codes) {
      await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.totp_enabled', outcome: 'failure', userId: user.id, details: { reason: 'wrong_code', during: 'sign_in' } });
      const setup = await deps.totp.pendingSetup(user);
      if (!setup) throw badRequest(NO_FIRST_STEP);
      answerPage(ctx, 400, totpSetupPage({ setup, action: `/interaction/${details.uid}/enrol`, csrf: issueCsrfToken(ctx), intro: enrolIntro, error: WRONG_CODE }));
      return;
    }
    await deps.recordEvent({ ...origin(ctx, details), type: 'mfa.totp_enabled', outcome: 'success', userId: user.id, details: { during: 'sign_in' } });
    rememberFirstStep(ctx, { uid: details.uid, accountId: user.id, amr: pending.amr, second: ['otp'] }, deps.interactionSeconds);
    answerPage(ctx, 200, recoveryCodesPage({ codes, next: { action: `/interaction/${details.uid}/enrol/continue`, csrf: issueCsrfToken(ctx) } }));
  });

  router.post('/enrol/continue', continueForm, async (ctx) => {
    const details = await loginInteraction(ctx);
    const pending = firstStep(ctx, details);
    if (!pending.second) throw badRequest(NO_FIRST_STEP);
    await signIn(ctx, details, pending.accountId, withSecondFactor(pending.amr, pending.second));
  });

  return router;
}
