import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import { HttpError } from '../http/errors.ts';
import { answerPage } from '../http/pages.ts';
import { errorPage } from '../pages/views.ts';
import { accountSignInUrl } from '../clients/account-client.ts';
import type { SessionRegistry } from '../sessions/registry.ts';
import type { SessionService } from '../sessions/service.ts';
import { RateLimited, type Counter, type LoginLimits } from '../security/limits.ts';
import type { PasswordHasher } from '../users/passwords.ts';
import type { User, UserQueries } from '../users/queries.ts';
import { reauthenticate } from '../users/reauthentication.ts';
import { AccountChangeRefused, EmailChangeRejected, type AccountHolder, type AccountSettings } from './settings.ts';
import type { AccountTokens } from '../users/account-tokens.ts';
import type { DesktopDevices } from '../plans/desktop-devices.ts';
import { PlanRejected, type PlanService } from '../plans/service.ts';
import { emailSchema } from '../users/accounts.ts';
import type { UpstreamService } from '../upstreams/service.ts';
import { upstreamIdSchema } from '../upstreams/settings.ts';
import { cspNonceOf } from '../http/security-headers.ts';
import type { MfaService } from '../mfa/service.ts';
import { twoFactorSection } from '../mfa/views.ts';
import {
  ACCOUNT_NOTICES,
  accountDeletedPage,
  accountPage,
  accountSignedOutPage,
  changeEmailPage,
  changePasswordPage,
  confirmEmailChangePage,
  deleteAccountPage,
  emailChangedPage,
  emailChangeRejectedPage,
  type AccountNotice,
  type PlanView,
} from './views.ts';

export interface AccountDependencies {
  issuer: string;
  provider: () => Provider;
  users: UserQueries;
  registry: SessionRegistry;
  sessions: SessionService;
  clientIp: ClientIp;
  recordEvent: RecordEvent;
  hasher: PasswordHasher;
  /** Wrong current passwords count like failed sign-ins (per IP and per account). */
  loginLimits: LoginLimits;
  /** The rules behind every change on these pages. */
  settings: AccountSettings;
  /** The user's plan and usage this period, and their desktop devices against the plan. */
  plans: Pick<PlanService, 'usageOf'>;
  desktopDevices: DesktopDevices;
  /** The single-use links of an email change, checked before the confirmation page is shown. */
  tokens: AccountTokens;
  /** Email change requests per user: each one mails an address the user chose. */
  emailChangeLimit: Counter<'email-change-user'>;
  /** The upstream sign-in methods linked to the account, and unlinking one (never the last way in). */
  upstreams: Pick<UpstreamService, 'methodsOf' | 'unlink'>;
  /** The two-factor section: the authenticator app and passkeys (mfa/). */
  mfa: Pick<MfaService, 'accountView'>;
}

const buttonForm = formGuard(z.object({}));
// Lengths are checked by the password rules (and bcrypt's 72 bytes by the hasher); these bound the form.
const reauthFields = z.object({ current_password: z.string().min(1).max(1000) });
const reauthForm = formGuard(reauthFields);
const changePasswordForm = formGuard(reauthFields.extend({ password: z.string().max(1000) }));
const changeEmailForm = formGuard(reauthFields.extend({ email: z.string().trim().max(1024) }));
const confirmEmailForm = formGuard(z.object({ token: z.string().max(200) }));
const sessionUid = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
const grantId = sessionUid;
// Postgres text cannot hold NUL: such an id is no client's, and must not reach a query.
const clientId = z.string().min(1).max(255).regex(/^[^\u0000]*$/);

interface Signedin {
  user: User;
  session: { uid: string; accountId: string; loginTs: number | undefined; exp: number | undefined };
}

/** The provider session behind this browser, if it belongs to an active user. */
async function signedIn(ctx: Context, deps: AccountDependencies): Promise<Signedin | undefined> {
  const session = await deps.provider().Session.get(ctx as never);
  const accountId = session.accountId;
  if (!accountId) return undefined;
  const user = await deps.users.findOwn(accountId);
  if (!user || user.disabled_at) return undefined;
  return { user, session: { uid: session.uid, accountId, loginTs: session.loginTs, exp: session.exp } };
}

/** For the account pages a browser opens: the signed-in user, or a redirect to sign in first. */
async function signedInOrSent(ctx: Context, deps: AccountDependencies): Promise<Signedin | undefined> {
  const current = await signedIn(ctx, deps);
  if (!current) ctx.redirect('/account/sign-in');
  return current;
}

function notFound(): HttpError {
  return new HttpError(404, 'Not found', 'That session or app is not on your account any more. Go back to your account page.');
}

async function requireSignedIn(ctx: Context, deps: AccountDependencies): Promise<Signedin> {
  const current = await signedIn(ctx, deps);
  if (!current) {
    throw new HttpError(401, 'You are signed out', 'Your session has ended. Open your account page and sign in again.');
  }
  return current;
}

/** The signed-in user as the account rules see them: in this session, from this request. */
function holderOf(ctx: Context, deps: AccountDependencies, { user, session }: Signedin): AccountHolder {
  return { user, sessionUid: session.uid, origin: requestOrigin(ctx, deps.clientIp) };
}

/** The plan section of /account; undefined when DEFAULT_PLAN names no plan (the server logged it at start). */
async function planView(userId: string, deps: AccountDependencies): Promise<PlanView | undefined> {
  try {
    const [allowance, meters] = await Promise.all([deps.desktopDevices.allowance(userId), deps.plans.usageOf(userId)]);
    return { plan: allowance.plan, meters, devices: allowance.devices };
  } catch (error) {
    if (error instanceof PlanRejected) return undefined;
    throw error;
  }
}

function done(ctx: Context, notice: AccountNotice) {
  ctx.status = 303;
  ctx.redirect(`/account?notice=${notice}`);
}

/** The audit event of a change refused before it reached the rules (wrong password, limits). */
function refusal({ user, sessionUid, origin }: AccountHolder, type: 'account.password_changed' | 'account.email_change_requested' | 'account.deleted') {
  return { ...origin, type, outcome: 'failure', userId: user.id, sessionId: sessionUid } as const;
}

/** Drops this browser's provider session cookie (the session itself was ended by the caller). */
function forgetSession(ctx: Context, deps: AccountDependencies): void {
  ctx.cookies.set(deps.provider().cookieName('session'), null, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/' });
}

/**
 * /account: the signed-in user's sessions and connected apps, with sign-out and revocation, and the
 * account's own settings. Every form carries a CSRF token; every change redirects back (post/redirect/get).
 */
export function accountRoutes(deps: AccountDependencies): Router {
  const router = new Router({ prefix: '/account' });

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get('/', async (ctx) => {
    const current = await signedInOrSent(ctx, deps);
    if (!current) return;
    const { user, session } = current;
    // The page view is a use of this session: refresh what the list shows about it.
    await deps.registry.record({
      uid: session.uid,
      userId: user.id,
      startedAt: new Date((session.loginTs ?? Math.floor(Date.now() / 1000)) * 1000),
      expiresAt: new Date((session.exp ?? Math.floor(Date.now() / 1000) + 3600) * 1000),
      userAgent: ctx.get('user-agent'),
      ip: deps.clientIp(ctx.req),
    });
    const requested = ctx.query['notice'];
    // Own keys only: `in` would also accept Object.prototype's (constructor, __proto__...).
    const notice = typeof requested === 'string' && Object.hasOwn(ACCOUNT_NOTICES, requested) ? (requested as AccountNotice) : undefined;
    const csrf = issueCsrfToken(ctx);
    ctx.type = 'html';
    ctx.body = accountPage({
      user,
      currentUid: session.uid,
      sessions: await deps.sessions.list(user.id),
      apps: await deps.sessions.connectedApps(user.id),
      plan: await planView(user.id, deps),
      signInMethods: { password: user.password_hash !== null, upstreams: await deps.upstreams.methodsOf(user.id) },
      twoFactor: twoFactorSection({ ...(await deps.mfa.accountView(ctx, user)), csrf, nonce: cspNonceOf(ctx) }),
      csrf,
      notice,
    });
  });

  router.get('/sign-in', (ctx) => {
    ctx.redirect(accountSignInUrl(deps.issuer));
  });

  // Where the provider sends the browser back after signing in for /account. The code is not
  // redeemed: the sign-in that matters is the provider session now in this browser.
  router.get('/callback', (ctx) => {
    const error = ctx.query['error'];
    if (typeof error === 'string') {
      ctx.status = 400;
      ctx.type = 'html';
      ctx.body = errorPage({
        title: 'Sign-in did not finish',
        message: 'You were not signed in to your account page. Open your account page to try again.',
        detail: error.slice(0, 100),
        requestId: ctx.state['requestId'] as string | undefined,
      });
      return;
    }
    ctx.status = 303;
    ctx.redirect('/account');
  });

  router.post('/sessions/sign-out-others', buttonForm, async (ctx) => {
    const current = await requireSignedIn(ctx, deps);
    await deps.settings.endOtherSessions(holderOf(ctx, deps, current));
    done(ctx, 'others-ended');
  });

  router.post('/sessions/:uid/sign-out', buttonForm, async (ctx) => {
    const current = await requireSignedIn(ctx, deps);
    const uid = sessionUid.safeParse(ctx.params['uid']);
    if (!uid.success) throw notFound();
    const outcome = await deps.settings.endSession(holderOf(ctx, deps, current), uid.data);
    if (uid.data === current.session.uid) {
      forgetSession(ctx, deps);
      ctx.type = 'html';
      ctx.body = accountSignedOutPage();
      return;
    }
    done(ctx, outcome.found ? 'session-ended' : 'nothing-changed');
  });

  router.post('/devices/:grantId/sign-out', buttonForm, async (ctx) => {
    const current = await requireSignedIn(ctx, deps);
    const grant = grantId.safeParse(ctx.params['grantId']);
    if (!grant.success) throw notFound();
    const outcome = await deps.settings.signOutDevice(holderOf(ctx, deps, current), grant.data);
    done(ctx, outcome.found ? 'device-signed-out' : 'nothing-changed');
  });

  router.post('/apps/:clientId/revoke', buttonForm, async (ctx) => {
    const current = await requireSignedIn(ctx, deps);
    const client = clientId.safeParse(ctx.params['clientId']);
    if (!client.success) throw notFound();
    const outcome = await deps.settings.revokeApp(holderOf(ctx, deps, current), client.data);
    done(ctx, outcome.grantsRevoked > 0 ? 'app-revoked' : 'nothing-changed');
  });

  router.post('/upstreams/:upstream/unlink', buttonForm, async (ctx) => {
    const current = await requireSignedIn(ctx, deps);
    const upstream = upstreamIdSchema.safeParse(ctx.params['upstream']);
    if (!upstream.success) throw notFound();
    const outcome = await deps.upstreams.unlink(current.user.id, upstream.data);
    if (outcome === 'not_linked') {
      done(ctx, 'nothing-changed');
      return;
    }
    const origin = { ...requestOrigin(ctx, deps.clientIp), userId: current.user.id, sessionId: current.session.uid };
    if (outcome === 'last_way_in') {
      await deps.recordEvent({ ...origin, type: 'upstream.unlinked', outcome: 'failure', details: { upstream: upstream.data, reason: 'last_way_in' } });
      throw new HttpError(
        409,
        'This is your only way to sign in',
        'You cannot unlink it: your account has no password and no other sign-in method. Set a password first (“Forgot password?” on the sign-in page), or link another sign-in method.',
      );
    }
    await deps.recordEvent({ ...origin, type: 'upstream.unlinked', outcome: 'success', details: { upstream: upstream.data } });
    done(ctx, 'upstream-unlinked');
  });

  router.get('/password', async (ctx) => {
    if (!(await signedInOrSent(ctx, deps))) return;
    answerPage(ctx, 200, changePasswordPage({ csrf: issueCsrfToken(ctx) }));
  });

  router.post('/password', changePasswordForm, async (ctx) => {
    const form = changePasswordForm.fieldsOf(ctx);
    const current = await requireSignedIn(ctx, deps);
    const holder = holderOf(ctx, deps, current);
    const again = (status: number, error: string) => answerPage(ctx, status, changePasswordPage({ csrf: issueCsrfToken(ctx), error }));

    const check = await reauthenticate(ctx, deps, current.user, form.current_password);
    if (!check.ok) {
      await deps.recordEvent({ ...refusal(holder, 'account.password_changed'), details: { reason: check.reason } });
      again(check.status, check.message);
      return;
    }
    try {
      await deps.settings.changePassword(holder, { current: form.current_password, next: form.password });
    } catch (error) {
      if (!(error instanceof AccountChangeRefused)) throw error;
      again(400, error.message);
      return;
    }
    done(ctx, 'password-changed');
  });

  router.get('/email', async (ctx) => {
    const current = await signedInOrSent(ctx, deps);
    if (!current) return;
    answerPage(ctx, 200, changeEmailPage({ csrf: issueCsrfToken(ctx), current: current.user.email }));
  });

  /**
   * Asks for a new address: the password again, then a link to the new address. The account keeps
   * its address until the link is used. A new address that already has an account gets a mail saying
   * so, and this page answers the same either way (no lookup of other people's addresses from here).
   */
  router.post('/email', changeEmailForm, async (ctx) => {
    const form = changeEmailForm.fieldsOf(ctx);
    const current = await requireSignedIn(ctx, deps);
    const { user } = current;
    const holder = holderOf(ctx, deps, current);
    const again = (status: number, error: string) =>
      answerPage(ctx, status, changeEmailPage({ csrf: issueCsrfToken(ctx), current: user.email, email: form.email, error }));

    const email = emailSchema.safeParse(form.email);
    if (!email.success) return again(400, 'Enter a valid email address. Nothing was changed.');
    if (email.data.toLowerCase() === user.email.toLowerCase()) return again(400, 'That is already your address. Nothing was changed.');
    const check = await reauthenticate(ctx, deps, user, form.current_password);
    if (!check.ok) {
      await deps.recordEvent({ ...refusal(holder, 'account.email_change_requested'), details: { reason: check.reason } });
      return again(check.status, check.message);
    }
    try {
      await deps.emailChangeLimit.spend({ userId: user.id });
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      await deps.recordEvent({ ...refusal(holder, 'account.email_change_requested'), details: { reason: 'rate_limited', limit: error.reported } });
      ctx.set(error.headers);
      return again(429, error.message);
    }
    await deps.settings.requestEmailChange(holder, email.data);
    done(ctx, 'email-change-sent');
  });

  // The link in the mail to the new address. Opening it needs no sign-in (it may be another device):
  // the request was made signed in, with the password; the link proves the new address.
  router.get('/email/confirm', async (ctx) => {
    const token = typeof ctx.query['token'] === 'string' ? ctx.query['token'] : '';
    const rejected = await deps.tokens.check(token, 'change_email');
    if (rejected) return answerPage(ctx, 400, emailChangeRejectedPage(rejected));
    answerPage(ctx, 200, confirmEmailChangePage({ csrf: issueCsrfToken(ctx), token }));
  });

  router.post('/email/confirm', confirmEmailForm, async (ctx) => {
    const form = confirmEmailForm.fieldsOf(ctx);
    let newAddress: string;
    try {
      newAddress = await deps.settings.confirmEmailChange(form.token, requestOrigin(ctx, deps.clientIp));
    } catch (error) {
      if (!(error instanceof EmailChangeRejected)) throw error;
      return answerPage(ctx, error.reason === 'taken' ? 409 : 400, emailChangeRejectedPage(error.reason));
    }
    answerPage(ctx, 200, emailChangedPage(newAddress));
  });

  router.post('/export', buttonForm, async (ctx) => {
    const current = await requireSignedIn(ctx, deps);
    const data = await deps.settings.exportData(holderOf(ctx, deps, current));
    if (!data) throw new HttpError(401, 'You are signed out', 'Your account is gone. Nothing was exported.');
    ctx.type = 'application/json; charset=utf-8';
    ctx.attachment(`jobswipe-account-${data.exported_at.slice(0, 10)}.json`);
    ctx.body = `${JSON.stringify(data, null, 2)}\n`;
  });

  router.get('/delete', async (ctx) => {
    const current = await signedInOrSent(ctx, deps);
    if (!current) return;
    answerPage(ctx, 200, deleteAccountPage({ csrf: issueCsrfToken(ctx), email: current.user.email }));
  });

  router.post('/delete', reauthForm, async (ctx) => {
    const form = reauthForm.fieldsOf(ctx);
    const current = await requireSignedIn(ctx, deps);
    const { user } = current;
    const holder = holderOf(ctx, deps, current);

    const check = await reauthenticate(ctx, deps, user, form.current_password);
    if (!check.ok) {
      await deps.recordEvent({ ...refusal(holder, 'account.deleted'), details: { reason: check.reason } });
      answerPage(ctx, check.status, deleteAccountPage({ csrf: issueCsrfToken(ctx), email: user.email, error: check.message }));
      return;
    }
    await deps.settings.deleteAccount(holder);
    forgetSession(ctx, deps);
    answerPage(ctx, 200, accountDeletedPage());
  });

  return router;
}
