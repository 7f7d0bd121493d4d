import { html, page } from '../pages/html.ts';
import { whyLinkFailed } from '../pages/link-problems.ts';
import type { TokenRejection } from '../users/account-tokens.ts';

/** The exact answer to every reset request, whether or not the address has an account. */
export const RESET_REQUESTED = 'If an account exists for that address, we sent a link';

const backTo = (loginUrl: string | undefined) => (loginUrl ? html`<p><a href="${loginUrl}">Back to sign in</a></p>` : '');

export function forgotPasswordPage(options: { csrf: string; loginUrl?: string | undefined; interaction?: string | undefined; email?: string; error?: string }): string {
  return page(
    'Forgot password',
    html`<h1>Reset your password</h1>
<p>Enter the email address of your JobSwipe account. We will mail you a link to choose a new password.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="/forgot-password">
<input type="hidden" name="_csrf" value="${options.csrf}">
${options.interaction ? html`<input type="hidden" name="interaction" value="${options.interaction}">` : ''}
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" required maxlength="320" value="${options.email ?? ''}" autofocus>
<button type="submit">Send reset link</button>
</form>
${backTo(options.loginUrl)}`,
  );
}

export function resetRequestedPage(options: { loginUrl?: string | undefined }): string {
  return page(
    'Check your email',
    html`<h1>Check your email</h1>
<p role="status">${RESET_REQUESTED}. It works once, for 1 hour.</p>
<p class="muted">No mail after a few minutes? Check your spam folder, and that you typed the address of your JobSwipe account.</p>
${backTo(options.loginUrl)}`,
  );
}

/** The form a password link opens: a reset, or (`first`) the first password of a user an administrator created. */
export function resetPasswordPage(options: { csrf: string; token: string; error?: string; first?: boolean }): string {
  const title = options.first ? 'Set your password' : 'Choose a new password';
  return page(
    title,
    html`<h1>${title}</h1>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="${options.first ? '/set-password' : '/reset-password'}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="token" value="${options.token}">
<label for="password">${options.first ? 'Password' : 'New password'}</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="10" autofocus>
<p class="muted">At least 10 characters; not a commonly used password.${options.first ? '' : ' You will be signed out everywhere, and apps will ask you to sign in again.'}</p>
<button type="submit">${options.first ? 'Set password' : 'Set new password'}</button>
</form>`,
  );
}

export function passwordResetDonePage(options: { first?: boolean } = {}): string {
  if (options.first) {
    return page(
      'Password set',
      html`<h1>Your password is set</h1>
<p>Go back to the JobSwipe app and sign in with your email address and this password.</p>`,
    );
  }
  return page(
    'Password changed',
    html`<h1>Your password is changed</h1>
<p>You were signed out everywhere. Go back to the JobSwipe app and sign in with your new password.</p>`,
  );
}

export function resetRejectedPage(reason: TokenRejection, options: { first?: boolean } = {}): string {
  const why = whyLinkFailed(reason, options.first ? { lifetime: 'links to set a password work for 7 days', replacedBy: 'password' } : { lifetime: 'reset links work for 1 hour', replacedBy: 'reset' });
  return page(
    'Link not valid',
    html`<h1>This link cannot be used</h1>
<p>${why} Ask for a new link, then use the newest mail.</p>
<p><a href="/forgot-password">Ask for a new link</a></p>`,
  );
}
