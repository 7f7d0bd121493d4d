import Router from '@koa/router';
import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { badRequest } from '../http/errors.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import { RateLimited, type LoginLimits } from '../security/limits.ts';
import { consentPage, deviceLimitPage, loginPage, type ScopeDescription } from '../pages/views.ts';
import { deviceLimitMessage, type DeviceAllowance, type DesktopDevices } from '../plans/desktop-devices.ts';
import type { PasswordHasher } from '../users/passwords.ts';
import type { UserQueries } from '../users/queries.ts';
import { completeLogin, factsOf, finishInteraction } from './complete-login.ts';
import type { UpstreamLoginChoices } from '../upstreams/login-choices.ts';
import { cspNonceOf } from '../http/security-headers.ts';
import type { MfaService } from '../mfa/service.ts';
import { passkeySignIn } from '../mfa/views.ts';
import { STEP_UP_REASON } from '../provider/acr-policy.ts';

export const LOGIN_FAILED = 'Email or password is incorrect';

const loginForm = formGuard(z.object({
  email: z.string().trim().max(320),
  password: z.string().max(1024),
}));

const consentForm = formGuard(z.object({
  decision: z.enum(['allow', 'deny']),
}));

const cancelForm = formGuard(z.object({}));

const SCOPE_DESCRIPTIONS: Record<string, string> = {
  openid: 'Know who you are',
  profile: 'See your name',
  email: 'See your email address',
  offline_access: 'Stay connected to your account when you are not using it',
  entitlements: 'See your plan and its limits',
};

function describeScopes(scopes: string[]): ScopeDescription[] {
  return scopes.map((name) => ({ name, description: SCOPE_DESCRIPTIONS[name] ?? `Use the JobSwipe API (${name})` }));
}

interface InteractionDependencies {
  provider: () => Provider;
  users: UserQueries;
  hasher: PasswordHasher;
  loginLimits: LoginLimits;
  clientIp: ClientIp;
  recordEvent: RecordEvent;
  /** SIGNUP and UNVERIFIED_SIGN_IN (docs/accounts.md). */
  signup: { mode: 'open' | 'invite' | 'closed'; unverifiedSignIn: boolean };
  /** Whether this browser carries a valid invitation (SIGNUP=invite shows the link only then). */
  invited: (ctx: Context) => Promise<boolean>;
  /** The plan's desktop device limit, checked before a native client gets a new grant. */
  desktopDevices: DesktopDevices;
  /** Social login (upstreams/): the buttons beside the password form, and `upstream=<id>` skipping this page. */
  upstreams: UpstreamLoginChoices;
  /** What follows the first step of a sign-in (a second factor, or none), and the login page's passkey button (mfa/). */
  mfa: Pick<MfaService, 'afterFirstStep' | 'stepUp' | 'passkeySignInOptions'>;
}

const PASSKEY_FAILED = 'That passkey did not sign you in. Try again, or sign in with your email and password.';

function clientNameOf(client: { clientName?: string | undefined; clientId: string } | undefined): string {
  return client?.clientName ?? client?.clientId ?? 'this app';
}

export function interactionRoutes(deps: InteractionDependencies): Router {
  const router = new Router({ prefix: '/interaction/:uid' });

  const signupUrl = async (ctx: Context, uid: string) =>
    deps.signup.mode === 'open' || (deps.signup.mode === 'invite' && (await deps.invited(ctx))) ? `/interaction/${uid}/signup` : undefined;

  const forgotUrl = (uid: string) => `/forgot-password?interaction=${encodeURIComponent(uid)}`;

  const passkeyButton = async (ctx: Context, uid: string, csrf: string) =>
    passkeySignIn({ uid, csrf, publicKey: await deps.mfa.passkeySignInOptions(ctx, uid), nonce: cspNonceOf(ctx) });

  router.get('/', async (ctx) => {
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const client = await provider.Client.find(String(details.params['client_id']));
    const clientName = clientNameOf(client);
    ctx.set('Cache-Control', 'no-store');
    ctx.type = 'html';

    if (details.prompt.name === 'login') {
      if (await deps.upstreams.followHint(ctx, details)) return;
      // Signed in, and asked again only because the app wants two factors: the second one is enough.
      const session = details.session;
      if (session && details.prompt.reasons.every((reason) => reason === STEP_UP_REASON)) {
        const secondFactor = await deps.mfa.stepUp(ctx, factsOf(details), session);
        if (secondFactor) {
          ctx.redirect(secondFactor);
          return;
        }
      }
      const csrf = issueCsrfToken(ctx);
      ctx.body = loginPage({
        action: `/interaction/${details.uid}/login`,
        csrf,
        clientName,
        forgotUrl: forgotUrl(details.uid),
        signupUrl: await signupUrl(ctx, details.uid),
        upstreams: await deps.upstreams.buttons(details.uid),
        passkey: await passkeyButton(ctx, details.uid, csrf),
        ...(ctx.query['passkey'] === 'failed' ? { error: PASSKEY_FAILED } : {}),
      });
      return;
    }
    if (details.prompt.name === 'consent') {
      const desktop = await newDesktopSignIn(provider, client, details);
      if (desktop && !(await roomForDevice(ctx, details, clientName))) return;
      // First-party apps are part of JobSwipe itself: the user is not asked to approve them.
      if (client?.['first_party'] === true) {
        const grantId = await grantRequested(provider, details, { fresh: desktop });
        if (desktop && !(await deviceFits(ctx, details, clientName, grantId))) return;
        await deps.recordEvent(consentEvent(ctx, details, deps.clientIp, 'consent.granted', { first_party: true, grant_id: grantId }));
        await finishInteraction(ctx, provider, { consent: { grantId } });
        return;
      }
      const requested = String(details.params['scope'] ?? '').split(' ').filter(Boolean);
      ctx.body = consentPage({
        action: `/interaction/${details.uid}/consent`,
        csrf: issueCsrfToken(ctx),
        clientName,
        scopes: describeScopes(requested),
      });
      return;
    }
    throw badRequest('This sign-in step is not supported. Go back to the app and start again.');
  });

  router.post('/login', loginForm, async (ctx) => {
    const form = loginForm.fieldsOf(ctx);
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'login') throw badRequest('You are already signed in. Go back to the app and continue.');

    const ip = deps.clientIp(ctx.req);
    const again = async (status: number, error: string) => {
      const client = await provider.Client.find(String(details.params['client_id']));
      ctx.status = status;
      ctx.type = 'html';
      ctx.set('Cache-Control', 'no-store');
      const csrf = issueCsrfToken(ctx);
      ctx.body = loginPage({
        action: `/interaction/${details.uid}/login`,
        csrf,
        clientName: clientNameOf(client),
        email: form.email,
        error,
        forgotUrl: forgotUrl(details.uid),
        signupUrl: await signupUrl(ctx, details.uid),
        upstreams: await deps.upstreams.buttons(details.uid),
        passkey: await passkeyButton(ctx, details.uid, csrf),
      });
    };
    let attempt: Awaited<ReturnType<LoginLimits['reserve']>>;
    try {
      // The attempt is counted before the password is looked at: a blocked one learns nothing about
      // it, and parallel attempts evaluate no more passwords than the limit allows.
      attempt = await deps.loginLimits.reserve(ip, form.email);
    } catch (error) {
      if (!(error instanceof RateLimited)) throw error;
      // The account limit names an account: the row records whose (by id; the email is not stored).
      const target = error.limit === 'login-account' ? await deps.users.findByEmail(form.email) : undefined;
      await deps.recordEvent({
        ...interactionOrigin(ctx, details, deps.clientIp),
        type: 'login.rate_limited',
        outcome: 'failure',
        userId: target?.id,
        details: { limit: error.reported, retry_after: error.retryAfterSeconds },
      });
      ctx.set(error.headers);
      await again(429, error.message);
      return;
    }

    const user = await deps.users.findByEmail(form.email);
    const valid = await deps.hasher.verify(form.password, user?.password_hash);
    if (!user || !valid || user.disabled_at) {
      await deps.recordEvent({
        ...interactionOrigin(ctx, details, deps.clientIp),
        type: 'login.failure',
        outcome: 'failure',
        userId: user?.id,
        details: { reason: !user ? 'unknown_account' : !valid ? 'wrong_password' : 'disabled' },
      });
      await again(401, user?.disabled_at && valid ? 'This account has been disabled. Contact JobSwipe support.' : LOGIN_FAILED);
      return;
    }
    // The password was right: the attempt does not count (the address's earlier failures do).
    await attempt.passed();
    if (!deps.signup.unverifiedSignIn && !user.email_verified) {
      // Only someone who knows the password learns that the account exists.
      await deps.recordEvent({
        ...interactionOrigin(ctx, details, deps.clientIp),
        type: 'login.failure',
        outcome: 'failure',
        userId: user.id,
        details: { reason: 'unverified' },
      });
      await again(403, 'Verify your email address first: open the link we sent you, then sign in again.');
      return;
    }
    if (user.password_hash && deps.hasher.needsRehash(user.password_hash)) {
      await deps.users.update(user.id, { passwordHash: await deps.hasher.hash(form.password) });
    }
    const next = await deps.mfa.afterFirstStep(ctx, factsOf(details), user.id, ['pwd']);
    if ('redirectTo' in next) {
      ctx.status = 303;
      ctx.redirect(next.redirectTo);
      return;
    }
    await deps.recordEvent({
      ...interactionOrigin(ctx, details, deps.clientIp),
      type: 'login.success',
      outcome: 'success',
      userId: user.id,
      details: { amr: next.login.amr.join(' '), acr: next.login.acr },
    });
    await completeLogin(ctx, provider, next.login);
  });

  router.post('/consent', consentForm, async (ctx) => {
    const form = consentForm.fieldsOf(ctx);
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'consent') throw badRequest('There is nothing to approve. Go back to the app and continue.');

    if (form.decision === 'deny') {
      await deps.recordEvent(consentEvent(ctx, details, deps.clientIp, 'consent.denied', { first_party: false }));
      await finishInteraction(ctx, provider, { error: 'access_denied', error_description: 'The user denied the request' });
      return;
    }
    const client = await provider.Client.find(String(details.params['client_id']));
    const clientName = clientNameOf(client);
    const desktop = await newDesktopSignIn(provider, client, details);
    if (desktop && !(await roomForDevice(ctx, details, clientName))) return;
    const grantId = await grantRequested(provider, details, { fresh: desktop });
    if (desktop && !(await deviceFits(ctx, details, clientName, grantId))) return;
    await deps.recordEvent(consentEvent(ctx, details, deps.clientIp, 'consent.granted', { first_party: false, grant_id: grantId }));
    await finishInteraction(ctx, provider, { consent: { grantId } });
  });

  // "Return to the app" on the device limit page: the app is told access_denied.
  router.post('/cancel', cancelForm, async (ctx) => {
    const provider = deps.provider();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.prompt.name !== 'consent') throw badRequest('There is nothing to cancel. Go back to the app and start again.');
    await finishInteraction(ctx, provider, { error: 'access_denied', error_description: 'The desktop device limit of the plan is reached' });
  });

  /** Shows the limit page (403) and records the refusal. */
  async function refuseDevice(ctx: Context, details: InteractionDetails, clientName: string, allowance: DeviceAllowance) {
    await deps.recordEvent({
      ...interactionOrigin(ctx, details, deps.clientIp),
      type: 'device.limit_reached',
      outcome: 'failure',
      userId: details.session?.accountId,
      details: { plan: allowance.plan.id, limit: allowance.plan.desktop_devices, in_use: allowance.inUse, device_code: details.deviceCode !== undefined },
    });
    ctx.status = 403;
    ctx.type = 'html';
    ctx.set('Cache-Control', 'no-store');
    ctx.body = deviceLimitPage({
      heading: deviceLimitMessage(allowance.plan),
      clientName,
      devices: allowance.devices,
      retryUrl: `/interaction/${details.uid}`,
      cancelAction: `/interaction/${details.uid}/cancel`,
      csrf: issueCsrfToken(ctx),
    });
  }

  /** Before a new desktop grant: whether the plan has room for one more device (else the page is shown). */
  async function roomForDevice(ctx: Context, details: InteractionDetails, clientName: string): Promise<boolean> {
    const allowance = await deps.desktopDevices.allowance(signedInAccount(details));
    if (allowance.roomForAnother) return true;
    await refuseDevice(ctx, details, clientName, allowance);
    return false;
  }

  /**
   * After the new grant is saved: whether it still fits, counting every other device. Two sign-ins at
   * once may both have passed the first check; each sees the other here, so at most the limit remain.
   */
  async function deviceFits(ctx: Context, details: InteractionDetails, clientName: string, grantId: string): Promise<boolean> {
    const provider = deps.provider();
    const others = await deps.desktopDevices.allowance(signedInAccount(details), { except: grantId });
    if (others.roomForAnother) return true;
    await (await provider.Grant.find(grantId))?.destroy();
    await refuseDevice(ctx, details, clientName, others);
    return false;
  }

  return router;
}

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

function signedInAccount(details: InteractionDetails): string {
  const accountId = details.session?.accountId;
  if (!accountId) throw badRequest('Your sign-in session ended. Go back to the app and start again.');
  return accountId;
}

/**
 * Whether consenting gives a native (desktop) client a new grant, i.e. signs in one more device. A
 * grant of this browser session is the same device signing in again, except in the device flow: there
 * the device is elsewhere, and gets a grant of its own.
 */
async function newDesktopSignIn(provider: Provider, client: { applicationType?: string | undefined } | undefined, details: InteractionDetails): Promise<boolean> {
  if (client?.applicationType !== 'native') return false;
  if (details.deviceCode !== undefined || !details.grantId) return true;
  return (await provider.Grant.find(details.grantId)) === undefined;
}

/** What every audit row of an interaction carries: address, agent, client and (once there is one) session. */
function interactionOrigin(ctx: Context, details: InteractionDetails, clientIp: ClientIp) {
  return { ...requestOrigin(ctx, clientIp), clientId: String(details.params['client_id'] ?? ''), sessionId: details.session?.uid };
}

function consentEvent(
  ctx: Context,
  details: InteractionDetails,
  clientIp: ClientIp,
  type: 'consent.granted' | 'consent.denied',
  extra: { first_party: boolean; grant_id?: string },
) {
  return {
    ...interactionOrigin(ctx, details, clientIp),
    type,
    outcome: type === 'consent.granted' ? ('success' as const) : ('failure' as const),
    userId: details.session?.accountId,
    details: { scope: String(details.params['scope'] ?? ''), ...extra },
  };
}

/**
 * Adds everything the consent prompt reported missing to the session's grant (or a new one). `fresh`:
 * always a new grant (a desktop device of its own), with what the session's grant already holds,
 * since the prompt reports only what that grant is missing.
 */
async function grantRequested(provider: Provider, details: InteractionDetails, options: { fresh?: boolean } = {}): Promise<string> {
  const accountId = signedInAccount(details);
  const clientId = String(details.params['client_id']);
  const existing = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  let grant = existing ?? new provider.Grant({ accountId, clientId });
  if (options.fresh && existing) {
    grant = new provider.Grant({ accountId, clientId });
    grant.addOIDCScope(existing.getOIDCScope());
    grant.addOIDCClaims(existing.getOIDCClaims());
    for (const [indicator, scope] of Object.entries(existing.resources ?? {})) grant.addResourceScope(indicator, String(scope));
  }
  const missing = details.prompt.details as {
    missingOIDCScope?: string[];
    missingOIDCClaims?: string[];
    missingResourceScopes?: Record<string, string[]>;
  };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}
