import { html, page } from '../pages/html.ts';

export const ACCOUNT_EXISTS = 'An account with this email already exists';

/** Linking needs proof: the password of the account that has the upstream's address. */
export function linkPage(options: { action: string; csrf: string; upstreamName: string; email: string; loginUrl: string; error?: string | undefined }): string {
  return page(
    'Link your account',
    html`<h1 id="account-exists">${ACCOUNT_EXISTS}</h1>
<p>${options.email} already has a JobSwipe account. Enter its password to sign in with ${options.upstreamName} from now on as well.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="${options.action}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Link and continue</button>
</form>
<p><a href="${options.loginUrl}">Back to sign-in</a></p>`,
  );
}

/** The account has the address but no password: only its own way in can prove it is yours. */
export function accountExistsPage(options: { email: string; loginUrl: string }): string {
  return page(
    'Account exists',
    html`<h1 id="account-exists">${ACCOUNT_EXISTS}</h1>
<p>${options.email} already has a JobSwipe account, which signs in another way. Sign in the way you usually do; you can then use your account page.</p>
<p><a href="${options.loginUrl}" id="back-to-sign-in">Back to sign-in</a></p>`,
  );
}

/** An upstream sign-in that did not finish: what happened and the way back to the login page. */
export function upstreamProblemPage(options: { title: string; message: string; loginUrl?: string | undefined; detail?: string | undefined; requestId?: string | undefined }): string {
  return page(
    options.title,
    html`<h1 id="upstream-problem">${options.title}</h1>
<p>${options.message}</p>
${options.loginUrl ? html`<p><a href="${options.loginUrl}" id="back-to-sign-in">Back to sign-in</a></p>` : html`<p>Go back to the app and sign in again.</p>`}
${options.detail ? html`<p class="muted">Details: <code>${options.detail}</code></p>` : ''}
${options.requestId ? html`<p class="muted">Reference: <code>${options.requestId}</code></p>` : ''}`,
  );
}
