import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import { readForm } from '../http/body.ts';
import { issueCsrfToken, verifyCsrfToken } from '../http/csrf.ts';
import type { ClientIp } from '../http/client-ip.ts';
import type { AuditLog } from '../audit/log.ts';
import { requestOrigin } from '../audit/provider-events.ts';
import { HttpError } from '../http/errors.ts';
import type { Logger } from '../logger.ts';
import { errorPage } from '../pages/views.ts';
import { accountSignInUrl } from '../provider/account-client.ts';
import type { SessionRegistry } from '../sessions/registry.ts';
import type { SessionService } from '../sessions/service.ts';
import { LoginLimited, type LoginLimits } from '../security/login-limits.ts';
import { checkPasswordRules, PasswordRejected, type PasswordHasher } from '../users/passwords.ts';
import type { User } from '../users/queries.ts';
import type { UserQueries } from '../users/queries.ts';
import type { PersonalData } from './personal-data.ts';
import {
  ACCOUNT_NOTICES,
  accountDeletedPage,
  accountPage,
  accountSignedOutPage,
  changePasswordPage,
  deleteAccountPage,
  type AccountNotice,
} from './views.ts';

export interface AccountDependencies {
  issuer: string;
  provider: () => Provider;
  users: UserQueries;
  registry: SessionRegistry;
  sessions: SessionService;
  log: Logger;
  clientIp: ClientIp;
  audit: AuditLog;
  hasher: PasswordHasher;
  /** Wrong current passwords count like failed sign-ins (per IP and per account). */
  loginLimits: LoginLimits;
  personalData: PersonalData;
}

const csrfForm = z.object({ _csrf: z.string().max(200) });
// Lengths are checked by the password rules (and bcrypt's 72 bytes by the hasher); these bound the form.
const reauthForm = csrfForm.extend({ current_password: z.string().min(1).max(1000) });
const changePasswordForm = reauthForm.extend({ password: z.string().max(1000) });
const WRONG_PASSWORD = 'That is not your current password. Nothing was changed.';
const sessionUid = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/);
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

function done(ctx: Context, notice: AccountNotice) {
  ctx.status = 303;
  ctx.redirect(`/account?notice=${notice}`);
}

type Reauthentication = { ok: true } | { ok: false; status: number; message: string; reason: 'wrong_password' | 'rate_limited' };

/**
 * Checks the signed-in user's password again (change password, delete account) under the sign-in
 * limits: refused before the password is looked at when the IP or the account is over them, and a
 * wrong password counts as a failed sign-in.
 */
async function reauthenticate(ctx: Context, deps: AccountDependencies, user: User, password: string): Promise<Reauthentication> {
  const ip = deps.clientIp(ctx.req);
  try {
    await deps.loginLimits.check(ip, user.email);
  } catch (error) {
    if (!(error instanceof LoginLimited)) throw error;
    ctx.set(error.headers);
    return { ok: false, status: 429, message: error.message, reason: 'rate_limited' };
  }
  if (!(await deps.hasher.verify(password, user.password_hash))) {
    await deps.loginLimits.failed(ip, user.email);
    return { ok: false, status: 401, message: WRONG_PASSWORD, reason: 'wrong_password' };
  }
  await deps.loginLimits.succeeded(ip);
  return { ok: true };
}

function htmlAnswer(ctx: Context, status: number, body: string) {
  ctx.status = status;
  ctx.type = 'html';
  ctx.body = body;
}

/**
 * /account: the signed-in user's sessions and connected apps, with sign-out and revocation.
 * Every form carries a CSRF token; every change redirects back (post/redirect/get).
 */
/** Drops this browser's provider session cookie (the session itself was ended by the caller). */
function forgetSession(ctx: Context, deps: AccountDependencies): void {
  ctx.cookies.set(deps.provider().cookieName('session'), null, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/' });
}

export function accountRoutes(deps: AccountDependencies): Router {
  const router = new Router({ prefix: '/account' });

  router.use(async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  });

  router.get('/', async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) {
      ctx.redirect('/account/sign-in');
      return;
    }
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
    ctx.type = 'html';
    ctx.body = accountPage({
      user,
      currentUid: session.uid,
      sessions: await deps.sessions.list(user.id),
      apps: await deps.sessions.connectedApps(user.id),
      csrf: issueCsrfToken(ctx),
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

  router.post('/sessions/sign-out-others', async (ctx) => {
    const form = await readForm(ctx, csrfForm);
    verifyCsrfToken(ctx, form._csrf);
    const { user, session } = await requireSignedIn(ctx, deps);
    const outcome = await deps.sessions.revokeOtherSessions(user.id, session.uid, 'signed out from account page');
    deps.log.info({ event: 'account.sessions_revoked', userId: user.id, sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked }, 'other sessions signed out');
    await deps.audit.record({
      ...requestOrigin(ctx, deps.clientIp),
      type: 'logout.account',
      outcome: 'success',
      userId: user.id,
      sessionId: session.uid,
      details: { ended: 'other_sessions', sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
    });
    done(ctx, 'others-ended');
  });

  router.post('/sessions/:uid/sign-out', async (ctx) => {
    const form = await readForm(ctx, csrfForm);
    verifyCsrfToken(ctx, form._csrf);
    const { user, session } = await requireSignedIn(ctx, deps);
    const uid = sessionUid.safeParse(ctx.params['uid']);
    if (!uid.success) throw notFound();
    const outcome = await deps.sessions.revokeSession(user.id, uid.data, 'signed out from account page');
    deps.log.info({ event: 'account.session_revoked', userId: user.id, found: outcome.found, grants: outcome.grantsRevoked }, 'session signed out');
    await deps.audit.record({
      ...requestOrigin(ctx, deps.clientIp),
      type: 'logout.account',
      outcome: outcome.found ? 'success' : 'failure',
      userId: user.id,
      sessionId: uid.data,
      details: { ended: uid.data === session.uid ? 'this_session' : 'one_session', sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
    });
    if (uid.data === session.uid) {
      forgetSession(ctx, deps);
      ctx.type = 'html';
      ctx.body = accountSignedOutPage();
      return;
    }
    done(ctx, outcome.found ? 'session-ended' : 'nothing-changed');
  });

  router.post('/apps/:clientId/revoke', async (ctx) => {
    const form = await readForm(ctx, csrfForm);
    verifyCsrfToken(ctx, form._csrf);
    const { user } = await requireSignedIn(ctx, deps);
    const client = clientId.safeParse(ctx.params['clientId']);
    if (!client.success) throw notFound();
    const outcome = await deps.sessions.revokeApp(user.id, client.data);
    deps.log.info({ event: 'account.app_revoked', userId: user.id, clientId: client.data, grants: outcome.grantsRevoked }, 'app access revoked');
    await deps.audit.record({
      ...requestOrigin(ctx, deps.clientIp),
      type: 'app.revoked',
      outcome: 'success',
      userId: user.id,
      clientId: client.data,
      details: { grants: outcome.grantsRevoked },
    });
    done(ctx, outcome.grantsRevoked > 0 ? 'app-revoked' : 'nothing-changed');
  });

  router.get('/password', async (ctx) => {
    if (!(await signedIn(ctx, deps))) {
      ctx.redirect('/account/sign-in');
      return;
    }
    htmlAnswer(ctx, 200, changePasswordPage({ csrf: issueCsrfToken(ctx) }));
  });

  router.post('/password', async (ctx) => {
    const form = await readForm(ctx, changePasswordForm);
    verifyCsrfToken(ctx, form._csrf);
    const { user, session } = await requireSignedIn(ctx, deps);
    const event = { ...requestOrigin(ctx, deps.clientIp), type: 'account.password_changed', userId: user.id, sessionId: session.uid } as const;
    const again = (status: number, error: string) => htmlAnswer(ctx, status, changePasswordPage({ csrf: issueCsrfToken(ctx), error }));

    const check = await reauthenticate(ctx, deps, user, form.current_password);
    if (!check.ok) {
      await deps.audit.record({ ...event, outcome: 'failure', details: { reason: check.reason } });
      again(check.status, check.message);
      return;
    }
    try {
      checkPasswordRules(form.password);
    } catch (error) {
      if (!(error instanceof PasswordRejected)) throw error;
      await deps.audit.record({ ...event, outcome: 'failure', details: { reason: 'rules' } });
      again(400, `Your new ${error.message}. Nothing was changed.`);
      return;
    }
    if (form.password === form.current_password) {
      await deps.audit.record({ ...event, outcome: 'failure', details: { reason: 'unchanged' } });
      again(400, 'Your new password is the same as your current one. Choose another. Nothing was changed.');
      return;
    }
    // The user role may not write password hashes: this is the system path, for the signed-in user only.
    await deps.users.update(user.id, { passwordHash: await deps.hasher.hash(form.password) });
    const outcome = await deps.sessions.revokeAllButSession(user.id, session.uid, 'password changed');
    deps.log.info({ event: 'account.password_changed', userId: user.id, sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked }, 'password changed');
    await deps.audit.record({ ...event, outcome: 'success', details: { sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked } });
    done(ctx, 'password-changed');
  });

  router.post('/export', async (ctx) => {
    const form = await readForm(ctx, csrfForm);
    verifyCsrfToken(ctx, form._csrf);
    const { user, session } = await requireSignedIn(ctx, deps);
    const data = await deps.personalData.exportOf(user.id);
    if (!data) throw new HttpError(401, 'You are signed out', 'Your account is gone. Nothing was exported.');
    deps.log.info({ event: 'account.exported', userId: user.id }, 'personal data exported');
    await deps.audit.record({
      ...requestOrigin(ctx, deps.clientIp),
      type: 'account.exported',
      outcome: 'success',
      userId: user.id,
      sessionId: session.uid,
      details: { sessions: data.sessions.length, apps: data.connected_apps.length, events: data.audit_events.length },
    });
    ctx.type = 'application/json; charset=utf-8';
    ctx.attachment(`jobswipe-account-${data.exported_at.slice(0, 10)}.json`);
    ctx.body = `${JSON.stringify(data, null, 2)}\n`;
  });

  router.get('/delete', async (ctx) => {
    const current = await signedIn(ctx, deps);
    if (!current) {
      ctx.redirect('/account/sign-in');
      return;
    }
    htmlAnswer(ctx, 200, deleteAccountPage({ csrf: issueCsrfToken(ctx), email: current.user.email }));
  });

  router.post('/delete', async (ctx) => {
    const form = await readForm(ctx, reauthForm);
    verifyCsrfToken(ctx, form._csrf);
    const { user, session } = await requireSignedIn(ctx, deps);
    const event = { ...requestOrigin(ctx, deps.clientIp), type: 'account.deleted', userId: user.id, sessionId: session.uid } as const;

    const check = await reauthenticate(ctx, deps, user, form.current_password);
    if (!check.ok) {
      await deps.audit.record({ ...event, outcome: 'failure', details: { reason: check.reason } });
      htmlAnswer(ctx, check.status, deleteAccountPage({ csrf: issueCsrfToken(ctx), email: user.email, error: check.message }));
      return;
    }
    // Disabled first, so no sign-in slips in while sessions and grants are revoked; then everything
    // goes (back-channel logout to every app), then the rows. The audit rows stay, under the uuid.
    await deps.users.disable(user.id);
    const outcome = await deps.sessions.revokeAll(user.id, 'account deleted');
    const erased = await deps.personalData.erase(user.id);
    deps.log.info({ event: 'account.deleted', userId: user.id, sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked }, 'account deleted');
    await deps.audit.record({ ...event, outcome: 'success', details: { sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked, deleted: erased.deleted } });
    forgetSession(ctx, deps);
    htmlAnswer(ctx, 200, accountDeletedPage());
  });

  return router;
}
