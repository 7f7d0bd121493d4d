import { html, page } from './html.ts';

/**
 * The pages of the device authorization grant (RFC 8628): enter the code shown on the device,
 * confirm the app it belongs to, and the page shown once the device is signed in.
 *
 * Every form carries the provider's own `xsrf` field (its session-bound check) and our `_csrf`
 * token (idp/src/http/csrf.ts), which the device routes check before the provider sees the form.
 */
export interface DeviceFormFields {
  action: string;
  /** The provider's xsrf secret for this browser session. */
  xsrf: string;
  csrf: string;
}

export function deviceCodePage(options: DeviceFormFields & { userCode?: string | undefined; error?: string | undefined }): string {
  return page(
    'Connect a device',
    html`<h1>Connect a device</h1>
<p>Enter the code shown by the JobSwipe app or command you want to sign in.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="${options.action}" autocomplete="off">
<input type="hidden" name="xsrf" value="${options.xsrf}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="user_code">Code</label>
<input id="user_code" name="user_code" type="text" required autofocus autocapitalize="characters" spellcheck="false" maxlength="20" placeholder="XXXX-XXXX" value="${options.userCode ?? ''}">
<button type="submit">Continue</button>
</form>`,
  );
}

export function deviceConfirmPage(options: DeviceFormFields & { userCode: string; clientName: string }): string {
  return page(
    'Connect a device',
    html`<h1>Sign in to ${options.clientName}?</h1>
<p>Continue only if the device or command you started shows this code:</p>
<p><strong><code>${options.userCode}</code></strong></p>
<p class="muted">If you did not start this yourself, or the code is different, choose Cancel: someone may be trying to get into your account.</p>
<form method="post" action="${options.action}">
<input type="hidden" name="xsrf" value="${options.xsrf}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="user_code" value="${options.userCode}">
<button type="submit" name="confirm" value="yes">Continue</button>
<button type="submit" name="abort" value="yes" class="secondary">Cancel</button>
</form>`,
  );
}

export function deviceSuccessPage(clientName: string): string {
  return page(
    'Device connected',
    html`<h1>Your device is signed in</h1>
<p>${clientName} is now signed in to your JobSwipe account. You can close this window and return to it.</p>`,
  );
}
