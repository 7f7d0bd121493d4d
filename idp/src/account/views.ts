import { html, page, type SafeHtml } from '../pages/html.ts';
import { whyLinkFailed } from '../pages/link-problems.ts';
import type { TokenRejection } from '../users/account-tokens.ts';
import { timeAgo } from '../sessions/device.ts';
import type { ConnectedApp, DesktopDevice, SessionView } from '../sessions/service.ts';
import type { MeterUsage, Plan } from '../plans/service.ts';
import type { LinkedMethod } from '../upstreams/queries.ts';

export const ACCOUNT_NOTICES = {
  'session-ended': 'That session is signed out. Apps that used it have been told.',
  'others-ended': 'Every other session is signed out.',
  'app-revoked': 'The app’s access is revoked. It has to ask you again to use your account.',
  'nothing-changed': 'That session or app was already gone.',
  'password-changed': 'Your password is changed. Every other session is signed out, and apps have to ask you to sign in again.',
  'email-change-sent': 'We sent a link to the new address. Your address changes when you open it (within 24 hours).',
  'device-signed-out': 'That desktop device is signed out. It has to sign in again to use your account.',
  'upstream-unlinked': 'That sign-in method is unlinked. It no longer signs you in to this account.',
  'totp-off': 'Your authenticator app is turned off, and its recovery codes no longer work.',
  'passkey-added': 'Your passkey is added. You can sign in with it.',
  'passkey-removed': 'That passkey is removed. It can no longer sign you in.',
} as const;

/** The ways in: a password, and each linked upstream with **Unlink** (docs/social-login.md). */
function signInMethodsSection(methods: { password: boolean; upstreams: LinkedMethod[] }, csrfField: ReturnType<typeof html>) {
  return html`<h2>Sign-in methods</h2>
<ul class="items" id="sign-in-methods">
<li data-method="password"><div class="item-title">Password</div><div class="muted">${methods.password ? 'Set' : 'Not set: use “Forgot password?” on the sign-in page to set one'}</div></li>
${methods.upstreams.map(
  (method) => html`<li data-upstream="${method.upstreamId}">
<div class="item-title">${method.upstreamName}</div>
<div class="muted">${method.email ?? 'No email shared'} · linked ${shortDate(method.linkedAt)}</div>
<form class="inline" method="post" action="/account/upstreams/${method.upstreamId}/unlink">${csrfField}<button type="submit" class="secondary">Unlink</button></form>
</li>`,
)}
</ul>`;
}

/** The plan section: the plan, each meter this period, and the desktop devices in use. */
export interface PlanView {
  plan: Plan;
  meters: MeterUsage[];
  devices: DesktopDevice[];
}

const resetDay = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'long', timeZone: 'UTC' });

/** "12 of 500 applications, resets on 1 January" (the period ends at 00:00 UTC on that day). */
export function meterLine(meter: Pick<MeterUsage, 'meter' | 'used' | 'limit' | 'period_end'>): string {
  return `${meter.used} of ${meter.limit} ${meter.meter.replaceAll('_', ' ')}, resets on ${resetDay.format(new Date(meter.period_end))}`;
}

function planSection(view: PlanView | undefined, csrfField: ReturnType<typeof html>) {
  if (!view) return html`<h2>Your plan</h2><p class="muted" id="plan">Your plan cannot be shown right now.</p>`;
  const { plan, meters, devices } = view;
  return html`<h2>Your plan</h2>
<p id="plan" data-plan-id="${plan.id}"><span class="item-title">${plan.name}</span>${plan.features.length > 0 ? html` · ${plan.features.join(', ')}` : ''}</p>
<ul class="items" id="usage">${meters.map((meter) => html`<li data-meter="${meter.meter}">${meterLine(meter)}</li>`)}</ul>
<h2>Desktop devices</h2>
<p id="desktop-devices">${devices.length} of ${plan.desktop_devices} desktop ${plan.desktop_devices === 1 ? 'device' : 'devices'} in use</p>
${devices.length > 0
  ? html`<ul class="items" id="devices">${devices.map(
      (device) => html`<li data-grant-id="${device.grantId}">
<div class="item-title">${device.clientName}</div>
<div class="muted">Signed in ${shortDate(device.since)}</div>
<form class="inline" method="post" action="/account/devices/${device.grantId}/sign-out">${csrfField}<button type="submit" class="secondary">Sign out this device</button></form>
</li>`,
    )}</ul>`
  : ''}`;
}

export type AccountNotice = keyof typeof ACCOUNT_NOTICES;

const SCOPE_NAMES: Record<string, string> = {
  openid: 'your identity',
  profile: 'your name',
  email: 'your email address',
  offline_access: 'access while you are away',
  entitlements: 'your plan',
};

function describeScopes(scopes: string[]): string {
  const names = scopes.map((scope) => SCOPE_NAMES[scope] ?? scope);
  return names.length > 0 ? names.join(', ') : 'sign-in only';
}

function shortDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function accountPage(options: {
  user: { name: string; email: string; email_verified: boolean };
  currentUid: string;
  sessions: SessionView[];
  apps: ConnectedApp[];
  plan?: PlanView | undefined;
  signInMethods?: { password: boolean; upstreams: LinkedMethod[] } | undefined;
  /** The two-factor section (mfa/views.ts). */
  twoFactor?: SafeHtml | undefined;
  csrf: string;
  notice?: AccountNotice | undefined;
  now?: Date;
}): string {
  const now = options.now ?? new Date();
  const others = options.sessions.filter((session) => session.uid !== options.currentUid);
  const csrfField = html`<input type="hidden" name="_csrf" value="${options.csrf}">`;
  return page(
    'Your account',
    html`<h1>Your account</h1>
<p>${options.user.name ? html`${options.user.name} · ` : ''}${options.user.email}</p>
${options.notice ? html`<p class="notice" role="status">${ACCOUNT_NOTICES[options.notice]}</p>` : ''}
${planSection(options.plan, csrfField)}
<h2>Where you are signed in</h2>
<ul class="items" id="sessions">${options.sessions.map(
      (session) => html`<li data-session-uid="${session.uid}">
<div class="item-title">${session.device}, signed in ${timeAgo(session.startedAt, now)}${session.uid === options.currentUid ? html`<span class="badge">This browser</span>` : ''}</div>
<div class="muted">Last active ${timeAgo(session.lastSeenAt, now)} · ${session.ip}</div>
<div class="muted">Apps: ${session.apps.length > 0 ? session.apps.map((app) => app.clientName).join(', ') : 'none'}</div>
<form class="inline" method="post" action="/account/sessions/${session.uid}/sign-out">${csrfField}<button type="submit" class="secondary">Sign out</button></form>
</li>`,
    )}</ul>
${others.length > 0
  ? html`<form method="post" action="/account/sessions/sign-out-others">${csrfField}<button type="submit">Sign out all other sessions</button></form>`
  : html`<p class="muted">You are not signed in anywhere else.</p>`}
<h2>Apps with access to your account</h2>
${options.apps.length > 0
  ? html`<ul class="items" id="apps">${options.apps.map(
      (app) => html`<li data-client-id="${app.clientId}">
<div class="item-title">${app.clientName}</div>
<div class="muted">Can use ${describeScopes(app.scopes)} · since ${shortDate(app.since)}</div>
<form class="inline" method="post" action="/account/apps/${encodeURIComponent(app.clientId)}/revoke">${csrfField}<button type="submit" class="secondary">Revoke access</button></form>
</li>`,
    )}</ul>`
  : html`<p class="muted">No app has access to your account.</p>`}
${options.signInMethods ? signInMethodsSection(options.signInMethods, csrfField) : ''}
${options.twoFactor ?? ''}
<h2>Your account</h2>
<ul class="items" id="account-actions">
<li id="email-address"><div class="item-title">Email address</div>
<div>${options.user.email} ${options.user.email_verified ? html`<span class="badge">Verified</span>` : html`<span class="badge warning">Not verified</span>`}</div>
${options.user.email_verified
  ? ''
  : html`<form class="inline" method="post" action="/verify-email/resend">${csrfField}<button type="submit" class="secondary">Resend verification email</button></form>`}
<a href="/account/email">Change email</a></li>
<li><div class="item-title">Password</div><a href="/account/password">Change password</a></li>
<li><div class="item-title">Your data</div><div class="muted">A JSON file with your profile, sessions, connected apps and the security events about you.</div>
<form class="inline" method="post" action="/account/export">${csrfField}<button type="submit" class="secondary">Download my data</button></form></li>
<li><div class="item-title">Delete your account</div><a href="/account/delete">Delete my account</a></li>
</ul>`,
    { wide: true },
  );
}

/** The change-password form; `error` is shown above it after a refused attempt. */
export function changePasswordPage(options: { csrf: string; error?: string | undefined }): string {
  return page(
    'Change password',
    html`<h1>Change password</h1>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="/account/password">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="current_password">Current password</label>
<input id="current_password" name="current_password" type="password" autocomplete="current-password" required autofocus>
<label for="password">New password</label>
<input id="password" name="password" type="password" autocomplete="new-password" minlength="10" required>
<p class="muted">At least 10 characters. Every other session is signed out, and apps have to ask you to sign in again.</p>
<button type="submit">Change password</button>
</form>
<p><a href="/account">Back to your account</a></p>`,
  );
}

/** The confirmation form for deleting the account: the password again, then nothing is left to undo. */
export function deleteAccountPage(options: { csrf: string; email: string; error?: string | undefined }): string {
  return page(
    'Delete your account',
    html`<h1>Delete your account</h1>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<p>This deletes the JobSwipe account ${options.email}: your profile, sessions and the access you gave apps. Apps are told you signed out. It cannot be undone.</p>
<p class="muted">A record of security events (sign-ins, changes) is kept under an anonymous number, without your email or name.</p>
<form method="post" action="/account/delete">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="current_password">Your password</label>
<input id="current_password" name="current_password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Delete my account</button>
</form>
<p><a href="/account">Keep my account</a></p>`,
  );
}

export function accountDeletedPage(): string {
  return page(
    'Account deleted',
    html`<h1>Your account was deleted</h1>
<p>Your JobSwipe account and its personal data are gone, and every app lost its access.</p>`,
  );
}

export function accountSignedOutPage(): string {
  return page(
    'Signed out',
    html`<h1>You are signed out</h1>
<p>You signed out of JobSwipe in this browser.</p>
<p><a href="/account">Sign in again</a></p>`,
  );
}

/** The change-email form: the new address and the password again. */
export function changeEmailPage(options: { csrf: string; current: string; email?: string; error?: string | undefined }): string {
  return page(
    'Change email',
    html`<h1>Change your email address</h1>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<p>Your address is now ${options.current}. We will send a link to the new address; it takes effect when you open it, and we tell the old address.</p>
<form method="post" action="/account/email">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="email">New email address</label>
<input id="email" name="email" type="email" autocomplete="email" required maxlength="320" value="${options.email ?? ''}" autofocus>
<label for="current_password">Your password</label>
<input id="current_password" name="current_password" type="password" autocomplete="current-password" required>
<button type="submit">Change email</button>
</form>
<p><a href="/account">Back to your account</a></p>`,
  );
}

export function confirmEmailChangePage(options: { csrf: string; token: string }): string {
  // A button, not the GET: mail scanners that open links must not spend the token.
  return page(
    'Confirm your new address',
    html`<h1>Use this address for your JobSwipe account?</h1>
<form method="post" action="/account/email/confirm">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="token" value="${options.token}">
<button type="submit">Use this email address</button>
</form>`,
  );
}

export function emailChangedPage(address: string): string {
  return page(
    'Email address changed',
    html`<h1>Your email address is changed</h1>
<p>Your JobSwipe account now uses ${address}. Sign in with it from now on; your password stays the same.</p>
<p><a href="/account">Go to your account</a></p>`,
  );
}

export function emailChangeRejectedPage(reason: TokenRejection | 'taken'): string {
  const why =
    reason === 'taken'
      ? 'That address now belongs to another JobSwipe account, so your address was not changed.'
      : whyLinkFailed(reason, { lifetime: 'links work for 24 hours', replacedBy: 'request' });
  return page(
    'Link not valid',
    html`<h1>Your address was not changed</h1>
<p>${why} To try again, open your account page and choose Change email.</p>
<p><a href="/account/email">Change email</a></p>`,
  );
}
