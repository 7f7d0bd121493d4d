import { html, page, type SafeHtml } from '../pages/html.ts';
import type { PasskeyView } from './passkeys.ts';
import type { FactorStatus } from './service.ts';
import type { TotpSetup } from './totp.ts';

/** The script that calls navigator.credentials for our passkey forms (served by us, passkey-script.ts). */
export const PASSKEY_SCRIPT_PATH = '/assets/passkeys.js';

function passkeyScript(nonce: string): SafeHtml {
  return html`<script nonce="${nonce}" src="${PASSKEY_SCRIPT_PATH}" defer></script>`;
}

function shortDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** A form the passkey script takes over: it asks the browser for a passkey with `options`, puts the answer in `credential`, and posts. */
function passkeyForm(options: { action: string; csrf: string; purpose: 'register' | 'authenticate'; publicKey: unknown; fields?: SafeHtml; button: string; secondary?: boolean }): SafeHtml {
  return html`<form method="post" action="${options.action}" data-passkey="${options.purpose}" data-options="${JSON.stringify(options.publicKey)}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="credential" value="">
${options.fields ?? ''}
<p class="error" role="alert" data-passkey-error hidden></p>
<button type="submit"${options.secondary ? html` class="secondary"` : ''}>${options.button}</button>
</form>`;
}

/** The section of /account: the authenticator app (set up, or turn off) and passkeys (listed, added, removed). */
export function twoFactorSection(options: {
  status: FactorStatus;
  passkeys: PasskeyView[];
  registration: unknown;
  csrf: string;
  nonce: string;
}): SafeHtml {
  const { status, passkeys, csrf } = options;
  const csrfField = html`<input type="hidden" name="_csrf" value="${csrf}">`;
  return html`<h2 id="two-factor">Two-factor authentication</h2>
<p class="muted">After your password, JobSwipe asks for a code from your authenticator app or for a passkey${status.totp || passkeys.length > 0 ? '' : ', once you set one up'}.</p>
<ul class="items">
<li id="authenticator-app"><div class="item-title">Authenticator app ${status.totp ? html`<span class="badge">On</span>` : html`<span class="badge warning">Off</span>`}</div>
${status.totp
  ? html`<div class="muted">${status.recoveryCodes} of 10 recovery codes left.</div>
<form method="post" action="/account/two-factor/totp/disable">${csrfField}
<label for="totp_off_password">Your password</label>
<input id="totp_off_password" name="current_password" type="password" autocomplete="current-password" required>
<label for="totp_off_code">A code from your app (or a recovery code)</label>
<input id="totp_off_code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required>
<button type="submit" class="secondary">Turn off</button>
</form>`
  : html`<form method="post" action="/account/two-factor/totp/setup">${csrfField}
<label for="totp_setup_password">Your password</label>
<input id="totp_setup_password" name="current_password" type="password" autocomplete="current-password" required>
<button type="submit">Set up authenticator app</button>
</form>`}</li>
<li id="passkeys"><div class="item-title">Passkeys</div>
${passkeys.length > 0
  ? html`<ul class="items" id="passkey-list">${passkeys.map(
      (passkey) => html`<li data-passkey-id="${passkey.id}"><div class="item-title">${passkey.name}</div>
<div class="muted">Added ${shortDate(passkey.createdAt)} · ${passkey.lastUsedAt ? `last used ${shortDate(passkey.lastUsedAt)}` : 'never used'}</div>
<form class="inline" method="post" action="/account/passkeys/${passkey.id}/remove">${csrfField}<button type="submit" class="secondary">Remove</button></form></li>`,
    )}</ul>`
  : html`<p class="muted">No passkeys yet. A passkey signs you in with your device's screen lock, without a password.</p>`}
${passkeyForm({
  action: '/account/passkeys',
  csrf,
  purpose: 'register',
  publicKey: options.registration,
  fields: html`<label for="passkey_name">Name</label>
<input id="passkey_name" name="name" type="text" maxlength="100" required value="Passkey ${passkeys.length + 1}">
<label for="passkey_password">Your password</label>
<input id="passkey_password" name="current_password" type="password" autocomplete="current-password" required>`,
  button: 'Add a passkey',
})}</li>
</ul>
${passkeyScript(options.nonce)}`;
}

/** The QR code, the secret as text, and the first code that turns the app on. */
export function totpSetupPage(options: { setup: TotpSetup; action: string; csrf: string; error?: string | undefined; intro?: string; back?: boolean }): string {
  return page(
    'Set up your authenticator app',
    html`<h1>Set up your authenticator app</h1>
${options.intro ? html`<p>${options.intro}</p>` : ''}
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<p>Scan this code with your authenticator app (Google Authenticator, 1Password, Authy…), or type the key below into it.</p>
<img class="qr-code" src="${options.setup.qrCode}" alt="QR code of your authenticator key" width="192" height="192">
<p>Key: <code id="totp-secret">${options.setup.secret}</code></p>
<form method="post" action="${options.action}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="code">The 6-digit code your app shows</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9 ]{6,7}" required autofocus>
<button type="submit">Turn on</button>
</form>
${options.back ? html`<p><a href="/account">Back to your account</a></p>` : ''}`,
  );
}

/** The ten recovery codes, shown once; `next` is where the user goes on (a form during a sign-in, else /account). */
export function recoveryCodesPage(options: { codes: string[]; next: { action: string; csrf: string } | undefined }): string {
  return page(
    'Your recovery codes',
    html`<h1>Two-factor authentication is on</h1>
<p>Keep these recovery codes somewhere safe. If you lose your phone, each one signs you in once instead of a code from the app. They are shown only now.</p>
<pre class="codes" id="recovery-codes">${options.codes.join('\n')}</pre>
${options.next
  ? html`<form method="post" action="${options.next.action}"><input type="hidden" name="_csrf" value="${options.next.csrf}"><button type="submit">Continue</button></form>`
  : html`<p><a href="/account">Back to your account</a></p>`}`,
  );
}

/** The second step of a sign-in: a code (from the app, or a recovery code) and, for a user with one, a passkey. */
export function secondFactorPage(options: {
  uid: string;
  csrf: string;
  clientName: string;
  code: boolean;
  passkey: unknown;
  nonce: string;
  error?: string | undefined;
}): string {
  return page(
    'Two-factor authentication',
    html`<h1>Two-factor authentication</h1>
<p class="muted">to continue to ${options.clientName}</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
${options.code
  ? html`<form method="post" action="/interaction/${options.uid}/second-factor">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="code">Code from your authenticator app</label>
<input id="code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required autofocus>
<p class="muted">Lost your phone? Enter one of your recovery codes instead.</p>
<button type="submit">Verify</button>
</form>`
  : ''}
${options.passkey
  ? html`${passkeyForm({ action: `/interaction/${options.uid}/passkey`, csrf: options.csrf, purpose: 'authenticate', publicKey: options.passkey, button: 'Use a passkey', secondary: options.code })}
${passkeyScript(options.nonce)}`
  : ''}`,
  );
}

/** The login page's passkey button (a discoverable credential: no email, no password). */
export function passkeySignIn(options: { uid: string; csrf: string; publicKey: unknown; nonce: string }): SafeHtml {
  return html`${passkeyForm({ action: `/interaction/${options.uid}/passkey`, csrf: options.csrf, purpose: 'authenticate', publicKey: options.publicKey, button: 'Sign in with a passkey', secondary: true })}
${passkeyScript(options.nonce)}`;
}
