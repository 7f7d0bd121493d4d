import { html, page, SafeHtml } from './html.ts';

export function loginPage(options: {
  action: string;
  csrf: string;
  clientName: string;
  forgotUrl: string;
  email?: string;
  error?: string;
  signupUrl?: string | undefined;
  /** One **Continue with <name>** button per upstream (docs/social-login.md). */
  upstreams?: Array<{ action: string; name: string }> | undefined;
  /** The passkey button (mfa/views.ts), below the password form. */
  passkey?: SafeHtml | undefined;
}): string {
  return page(
    'Sign in',
    html`<h1>Sign in</h1>
<p class="muted">to continue to ${options.clientName}</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="${options.action}" autocomplete="on">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="username" required value="${options.email ?? ''}" ${options.email ? '' : html`autofocus`}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required ${options.email ? html`autofocus` : ''}>
<button type="submit">Sign in</button>
</form>
${options.upstreams?.length
  ? html`<div class="upstreams" id="upstreams">${options.upstreams.map(
      (upstream) => html`<form method="post" action="${upstream.action}"><input type="hidden" name="_csrf" value="${options.csrf}"><button type="submit" class="secondary">Continue with ${upstream.name}</button></form>`,
    )}</div>`
  : ''}
${options.passkey ?? ''}
<p><a href="${options.forgotUrl}">Forgot password?</a></p>
${options.signupUrl ? html`<p>New to JobSwipe? <a href="${options.signupUrl}">Create account</a></p>` : ''}`,
  );
}

export interface ScopeDescription {
  name: string;
  description: string;
}

export function consentPage(options: { action: string; csrf: string; clientName: string; scopes: ScopeDescription[] }): string {
  return page(
    'Allow access',
    html`<h1>Allow ${options.clientName} to access your account?</h1>
<p>${options.clientName} is asking to:</p>
<ul class="scopes">${options.scopes.map((scope) => html`<li>${scope.description}</li>`)}</ul>
<form method="post" action="${options.action}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny" class="secondary">Deny</button>
</form>`,
  );
}

/**
 * A desktop sign-in over the plan's limit: the limit, the devices in use, where to sign one out, and
 * the way back to the app (which is told access_denied). "Try again" re-checks after a sign-out.
 */
export function deviceLimitPage(options: {
  heading: string;
  clientName: string;
  devices: Array<{ clientName: string; since: Date }>;
  retryUrl: string;
  cancelAction: string;
  csrf: string;
}): string {
  return page(
    'Desktop device limit reached',
    html`<h1 id="device-limit">${options.heading}</h1>
${options.devices.length === 0
  ? html`<p>Desktop sign-ins are not part of your plan, so ${options.clientName} cannot sign in here.</p>`
  : html`<p>You are signed in on ${options.devices.length === 1 ? 'this desktop device' : `these ${options.devices.length} desktop devices`} already, so ${options.clientName} cannot sign in here:</p>
<ul class="items" id="devices-in-use">${options.devices.map((device) => html`<li>${device.clientName}, signed in ${device.since.toISOString().slice(0, 10)}</li>`)}</ul>`}
<p><a href="/account" id="sign-one-out">Sign a device out on your account page</a>, then <a href="${options.retryUrl}">try again</a>.</p>
<form method="post" action="${options.cancelAction}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<button type="submit" class="secondary">Return to ${options.clientName}</button>
</form>`,
  );
}

export function logoutPage(options: { form: string; clientName: string | undefined }): string {
  // Without logout=yes the provider signs the user out of the asking app only and keeps the session.
  return page(
    'Sign out',
    html`<h1>Sign out of JobSwipe?</h1>
<p>${options.clientName ? `${options.clientName} asked to sign you out.` : 'You asked to sign out.'} Signing out ends your JobSwipe session in this browser and signs you out of every JobSwipe app here.</p>
${rawForm(options.form)}
<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>
${options.clientName ? html`<button type="submit" form="op.logoutForm" class="secondary">Sign out of ${options.clientName} only</button>` : ''}`,
  );
}

function rawForm(form: string): SafeHtml {
  // The provider builds this form (action URL and its own xsrf field) with escaped values.
  return new SafeHtml(form);
}

export function signedOutPage(clientName: string | undefined): string {
  return page(
    'Signed out',
    html`<h1>You are signed out</h1>
<p>${clientName ? `You signed out of ${clientName} and JobSwipe.` : 'You signed out of JobSwipe.'} You can close this window.</p>`,
  );
}

export function errorPage(options: { title: string; message: string; detail?: string | undefined; requestId?: string | undefined }): string {
  return page(
    options.title,
    html`<h1>${options.title}</h1>
<p>${options.message}</p>
${options.detail ? html`<p class="muted">Details: <code>${options.detail}</code></p>` : ''}
${options.requestId ? html`<p class="muted">Reference: <code>${options.requestId}</code></p>` : ''}`,
  );
}

export function homePage(issuer: string): string {
  return page(
    'JobSwipe Identity',
    html`<h1>JobSwipe Identity</h1>
<p>This is JobSwipe's sign-in service. Open the JobSwipe app you want to use and choose <strong>Sign in</strong>.</p>
<p class="muted">Developers: the OpenID Connect discovery document is at <code>${issuer}/.well-known/openid-configuration</code>.</p>`,
  );
}
