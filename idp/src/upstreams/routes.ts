import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { errors } from 'oidc-provider';
import { z } from 'zod';
import type { RecordEvent } from '../audit/record-event.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { badRequest, HttpError } from '../http/errors.ts';
import { formGuard } from '../http/form-guard.ts';
import { answerPage } from '../http/pages.ts';
import { requestIdOf } from '../http/request-scope.ts';
import { completeLogin, factsOf } from '../interactions/complete-login.ts';
import type { MfaService } from '../mfa/service.ts';
import { RateLimited, type LoginLimits } from '../security/limits.ts';
import type { PasswordHasher } from '../users/passwords.ts';
import type { User } from '../users/queries.ts';
import { UpstreamAnswerRejected, type PendingAuthorization, type UpstreamClients } from './client.ts';
import { sealedCookie } from './sealed-cookie.ts';
import { upstreamIdSchema, type Upstream } from './settings.ts';
import { UpstreamRejected, type UpstreamIdentity, type UpstreamService } from './service.ts';
import type { UpstreamLoginChoices } from './login-choices.ts';
import { accountExistsPage, linkPage, upstreamProblemPage } from './views.ts';

/*
 * Social login (docs/social-login.md). The browser leaves for the upstream from the login page (a
 * button) or straight from the authorization request (`upstream=<id>`), and comes back to
 * <ISSUER>/upstream/<id>/callback. The interaction cookie is scoped to /interaction/<uid>, so the
 * callback only checks the upstream's answer, and hands who signed in to /interaction/<uid>/upstream,
 * where the interaction is finished: a linked user signs in, a new one is created, an existing
 * address needs that account's password first.
 */

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

export interface UpstreamRouteDependencies {
  provider: () => Provider;
  upstreams: UpstreamService;
  clients: UpstreamClients;
  cookieKeys: string[];
  hasher: PasswordHasher;
  /** The link form's password counts like a sign-in (per IP and per account). */
  loginLimits: LoginLimits;
  clientIp: ClientIp;
  recordEvent: RecordEvent;
  /**
   * SIGNUP: a first sign-in creates a user only when it is `open`. An invitation (`invite`) is for one
   * address and is spent by the sign-up form; an invitee creates the account there, and links the
   * upstream at their next upstream sign-in (with the password).
   */
  signupMode: 'open' | 'invite' | 'closed';
  /** What follows an upstream sign-in, as after a password (mfa/): a user's second factor, or none. */
  mfa: Pick<MfaService, 'afterFirstStep'>;
}

/** An upstream sign-in under way: the interaction it belongs to, the upstream, and the checks of its answer. */
interface PendingSignIn extends PendingAuthorization {
  uid: string;
  upstreamId: string;
}

/** Who the upstream says signed in, carried from the callback to the interaction it belongs to. */
interface CarriedIdentity {
  uid: string;
  identity: UpstreamIdentity;
}

const SIGN_IN_SECONDS = 10 * 60;
const startForm = formGuard(z.object({}));
const linkForm = formGuard(z.object({ password: z.string().max(1024) }));

const loginUrlOf = (uid: string) => `/interaction/${encodeURIComponent(uid)}?choose`;
const completeUrlOf = (uid: string) => `/interaction/${encodeURIComponent(uid)}/upstream`;

export function createUpstreamSignIn(deps: UpstreamRouteDependencies) {
  const pendingCookie = sealedCookie<PendingSignIn>('jobswipe.upstream', deps.cookieKeys, SIGN_IN_SECONDS);
  const identityCookie = sealedCookie<CarriedIdentity>('jobswipe.upstream.identity', deps.cookieKeys, SIGN_IN_SECONDS);

  async function rejected(ctx: Context, upstreamId: string, reason: string, extra: { userId?: string | undefined; clientId?: string | undefined; error?: string | undefined } = {}) {
    await deps.recordEvent({
      ...requestOrigin(ctx, deps.clientIp),
      type: 'upstream.rejected',
      outcome: 'failure',
      userId: extra.userId,
      clientId: extra.clientId,
      details: { upstream: upstreamId, reason, ...(extra.error ? { error: extra.error } : {}) },
    });
  }

  function problem(ctx: Context, status: number, options: { title: string; message: string; uid?: string | undefined; detail?: string | undefined }) {
    answerPage(ctx, status, upstreamProblemPage({ ...options, loginUrl: options.uid ? loginUrlOf(options.uid) : undefined, requestId: requestIdOf(ctx.req) }));
  }

  /** Sends the browser to the upstream, the pending sign-in sealed in a cookie only the callback reads. */
  async function leaveFor(ctx: Context, uid: string, upstream: Upstream, clientId: string) {
    let started: Awaited<ReturnType<UpstreamClients['start']>>;
    try {
      started = await deps.clients.start(upstream);
    } catch (error) {
      if (!(error instanceof UpstreamAnswerRejected)) throw error;
      await rejected(ctx, upstream.id, error.reason, { clientId, error: error.upstreamError });
      problem(ctx, 502, { title: `${upstream.name} is not available`, message: `${error.message} Sign in another way, or try again later.`, uid });
      return;
    }
    pendingCookie.set(ctx, { uid, upstreamId: upstream.id, ...started.pending }, '/upstream');
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 303;
    ctx.redirect(started.url);
  }

  async function interaction(ctx: Context): Promise<{ provider: Provider; details: InteractionDetails; carried: CarriedIdentity }> {
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const carried = identityCookie.get(ctx);
    if (!carried || carried.uid !== details.uid) {
      throw badRequest('This sign-in took too long or was started in another window. Go back to the app and sign in again.');
    }
    if (details.prompt.name !== 'login') throw badRequest('You are already signed in. Go back to the app and continue.');
    return { provider, details, carried };
  }

  async function signIn(ctx: Context, provider: Provider, details: InteractionDetails, identity: UpstreamIdentity, user: User, event: { created?: boolean; linked?: boolean }) {
    identityCookie.clear(ctx, completeUrlOf(details.uid));
    await deps.recordEvent({
      ...requestOrigin(ctx, deps.clientIp),
      type: 'upstream.sign_in',
      outcome: 'success',
      userId: user.id,
      clientId: String(details.params['client_id'] ?? ''),
      sessionId: details.session?.uid,
      details: { upstream: identity.upstreamId, created: event.created ?? false, amr: event.linked ? 'fed pwd' : 'fed' },
    });
    // A link was proven with the password too: both methods were used. A user with a second factor gives it next.
    const next = await deps.mfa.afterFirstStep(ctx, factsOf(details), user.id, event.linked ? ['fed', 'pwd'] : ['fed']);
    if ('redirectTo' in next) {
      ctx.status = 303;
      ctx.redirect(next.redirectTo);
      return;
    }
    await completeLogin(ctx, provider, next.login);
  }

  function showLinkPage(ctx: Context, status: number, uid: string, upstreamName: string, user: User, error?: string) {
    if (user.password_hash === null) {
      answerPage(ctx, 409, accountExistsPage({ email: user.email, loginUrl: loginUrlOf(uid) }));
      return;
    }
    answerPage(ctx, status, linkPage({
      action: `${completeUrlOf(uid)}/link`,
      csrf: issueCsrfToken(ctx),
      upstreamName,
      email: user.email,
      loginUrl: loginUrlOf(uid),
      error,
    }));
  }

  async function upstreamNamed(id: string): Promise<Upstream | undefined> {
    if (!upstreamIdSchema.safeParse(id).success) return undefined;
    try {
      return await deps.upstreams.find(id);
    } catch (error) {
      // A sealed secret that does not open (the server cipher logged it): the method is unavailable, not a server error.
      if (!(error instanceof errors.OIDCProviderError)) throw error;
      throw new HttpError(502, 'This sign-in method is not available', 'Signing in this way does not work right now. Go back and sign in another way.');
    }
  }

  async function nameOf(upstreamId: string): Promise<string> {
    return (await deps.upstreams.summary(upstreamId))?.name ?? upstreamId;
  }

  const router = new Router();

  // A **Continue with <name>** button on the login page.
  router.post('/interaction/:uid/upstream/:upstream/start', startForm, async (ctx) => {
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'login') throw badRequest('You are already signed in. Go back to the app and continue.');
    const upstream = await upstreamNamed(String(ctx.params['upstream']));
    if (!upstream) throw badRequest('This sign-in method is not offered any more. Go back and choose another.');
    await leaveFor(ctx, details.uid, upstream, String(details.params['client_id'] ?? ''));
  });

  // The redirect URI registered at the upstream: <ISSUER>/upstream/<id>/callback.
  router.get('/upstream/:upstream/callback', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const upstreamId = String(ctx.params['upstream']).slice(0, 64);
    const pending = pendingCookie.get(ctx);
    // Single use: whatever the answer, the pending sign-in is over.
    pendingCookie.clear(ctx, '/upstream');
    if (!pending || pending.upstreamId !== upstreamId) {
      await rejected(ctx, upstreamId, 'no_pending_sign_in');
      problem(ctx, 400, { title: 'Sign-in did not finish', message: 'This sign-in took too long, or was not started in this browser.' });
      return;
    }
    const upstream = await upstreamNamed(upstreamId);
    if (!upstream) {
      problem(ctx, 400, { title: 'Sign-in did not finish', message: 'This sign-in method is not offered any more.', uid: pending.uid });
      return;
    }
    try {
      const identity = await deps.clients.finish(upstream, ctx.search, pending);
      identityCookie.set(ctx, { uid: pending.uid, identity }, completeUrlOf(pending.uid));
    } catch (error) {
      if (!(error instanceof UpstreamAnswerRejected)) throw error;
      await rejected(ctx, upstream.id, error.reason, { error: error.upstreamError });
      const cancelled = error.upstreamError === 'access_denied';
      problem(ctx, error.reason === 'unreachable' ? 502 : 400, {
        title: cancelled ? `Signing in with ${upstream.name} was cancelled` : `Signing in with ${upstream.name} did not finish`,
        message: cancelled ? `${upstream.name} did not sign you in. Choose another way to sign in, or try again.` : `${error.message} You were not signed in.`,
        detail: error.upstreamError,
        uid: pending.uid,
      });
      return;
    }
    ctx.status = 303;
    ctx.redirect(completeUrlOf(pending.uid));
  });

  // Back inside the interaction: sign in, create the user, or ask for the password to link.
  router.get('/interaction/:uid/upstream', async (ctx) => {
    const { provider, details, carried } = await interaction(ctx);
    const { identity } = carried;
    const upstreamName = await nameOf(identity.upstreamId);
    const clientId = String(details.params['client_id'] ?? '');
    const decision = await deps.upstreams.decide(identity);
    if (decision.kind === 'linked') {
      if (decision.user.disabled_at) {
        await rejected(ctx, identity.upstreamId, 'disabled', { userId: decision.user.id, clientId });
        problem(ctx, 403, { title: 'Account disabled', message: 'This account has been disabled. Contact JobSwipe support.', uid: details.uid });
        return;
      }
      await signIn(ctx, provider, details, identity, decision.user, {});
      return;
    }
    if (decision.kind === 'link_needed') {
      showLinkPage(ctx, 200, details.uid, upstreamName, decision.user);
      return;
    }
    if (deps.signupMode !== 'open') {
      await rejected(ctx, identity.upstreamId, 'signup_closed', { clientId });
      problem(ctx, 403, {
        title: 'No account for this sign-in',
        message: `There is no JobSwipe account for this ${upstreamName} account, and new accounts cannot be created here right now.`,
        uid: details.uid,
      });
      return;
    }
    try {
      const outcome = await deps.upstreams.createUser(identity);
      if ('taken' in outcome) {
        showLinkPage(ctx, 200, details.uid, upstreamName, outcome.taken);
        return;
      }
      await signIn(ctx, provider, details, identity, outcome.created, { created: true });
    } catch (error) {
      if (!(error instanceof UpstreamRejected)) throw error;
      await rejected(ctx, identity.upstreamId, 'no_email', { clientId });
      problem(ctx, 400, {
        title: 'No email address',
        message: `${upstreamName} did not share an email address, which a JobSwipe account needs. Sign in another way, or allow ${upstreamName} to share it.`,
        uid: details.uid,
      });
    }
  });

  // **Link and continue**: the existing account's password, under the sign-in limits.
  router.post('/interaction/:uid/upstream/link', linkForm, async (ctx) => {
    const { password } = linkForm.fieldsOf(ctx);
    const { provider, details, carried } = await interaction(ctx);
    const { identity } = carried;
    const upstreamName = await nameOf(identity.upstreamId);
    const decision = await deps.upstreams.decide(identity);
    if (decision.kind !== 'link_needed') {
      // Linked meanwhile (another tab), or the address changed owner: the page decides again.
      ctx.status = 303;
      ctx.redirect(completeUrlOf(details.uid));
      return;
    }
    const { user } = decision;
    const origin = { ...requestOrigin(ctx, deps.clientIp), clientId: String(details.params['client_id'] ?? ''), sessionId: details.session?.uid };
    let attempt: Awaited<ReturnType<LoginLimits['reserve']>>;
    try {
      attempt = await deps.loginLimits.reserve(origin.ip, user.email);
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      await deps.recordEvent({ ...origin, type: 'login.rate_limited', outcome: 'failure', userId: user.id, details: { limit: error.reported, retry_after: error.retryAfterSeconds } });
      ctx.set(error.headers);
      showLinkPage(ctx, 429, details.uid, upstreamName, user, error.message);
      return;
    }
    const valid = await deps.hasher.verify(password, user.password_hash);
    if (!valid || user.disabled_at) {
      await deps.recordEvent({ ...origin, type: 'upstream.linked', outcome: 'failure', userId: user.id, details: { upstream: identity.upstreamId, reason: valid ? 'disabled' : 'wrong_password' } });
      if (valid) {
        problem(ctx, 403, { title: 'Account disabled', message: 'This account has been disabled. Contact JobSwipe support.', uid: details.uid });
        return;
      }
      showLinkPage(ctx, 401, details.uid, upstreamName, user, 'That password is not right.');
      return;
    }
    await attempt.passed();
    await deps.upstreams.link(identity, user);
    await deps.recordEvent({ ...origin, type: 'upstream.linked', outcome: 'success', userId: user.id, details: { upstream: identity.upstreamId } });
    await signIn(ctx, provider, details, identity, user, { linked: true });
  });

  const choices: UpstreamLoginChoices = {
    async buttons(uid) {
      const all = await deps.upstreams.list();
      return all.map((upstream) => ({ action: `/interaction/${encodeURIComponent(uid)}/upstream/${upstream.id}/start`, name: upstream.name }));
    },
    async followHint(ctx, details) {
      const hint = details.params['upstream'];
      // ?choose: the way back from a failed upstream sign-in shows this page instead.
      if (typeof hint !== 'string' || ctx.query['choose'] !== undefined) return false;
      const upstream = await upstreamNamed(hint);
      if (!upstream) return false;
      await leaveFor(ctx, details.uid, upstream, String(details.params['client_id'] ?? ''));
      return true;
    },
  };

  return { router, choices };
}
