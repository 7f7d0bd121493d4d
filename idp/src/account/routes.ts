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
import type { User } from '../users/queries.ts';
import type { UserQueries } from '../users/queries.ts';
import { ACCOUNT_NOTICES, accountPage, accountSignedOutPage, type AccountNotice } from './views.ts';

export interface AccountDependencies {
  issuer: string;
  provider: () => Provider;
  users: UserQueries;
  registry: SessionRegistry;
  sessions: SessionService;
  log: Logger;
  clientIp: ClientIp;
  audit: AuditLog;
}

const csrfForm = z.object({ _csrf: z.string().max(200) });
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

/**
 * /account: the signed-in user's sessions and connected apps, with sign-out and revocation.
 * Every form carries a CSRF token; every change redirects back (post/redirect/get).
 */
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
      ctx.cookies.set(deps.provider().cookieName('session'), null, { signed: true, httpOnly: true, sameSite: 'lax', secure: ctx.secure, path: '/' });
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

  return router;
}
