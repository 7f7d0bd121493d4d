import { html, page } from '../pages/html.ts';
import { whyLinkFailed } from '../pages/link-problems.ts';

export function signupPage(options: { action: string; loginUrl: string; csrf: string; clientName: string; email?: string; name?: string; error?: string }): string {
  return page(
    'Create account',
    html`<h1>Create your JobSwipe account</h1>
<p class="muted">to continue to ${options.clientName}</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="${options.action}" autocomplete="on">
<input type="hidden" name="_csrf" value="${options.csrf}">
<label for="email">Email</label>
<input id="email" name="email" type="email" autocomplete="email" required maxlength="320" value="${options.email ?? ''}" autofocus>
<label for="name">Name</label>
<input id="name" name="name" type="text" autocomplete="name" maxlength="200" value="${options.name ?? ''}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="new-password" required minlength="10">
<p class="muted">At least 10 characters; not a commonly used password.</p>
<button type="submit">Create account</button>
</form>
<p><a href="${options.loginUrl}">I already have an account</a></p>`,
  );
}

/** The same page whether or not the address already had an account (no enumeration). */
export function checkEmailPage(options: { continueAction: string; resendAction: string; csrf: string; notice?: string }): string {
  return page(
    'Check your email',
    html`<h1>Check your email</h1>
<p>We sent a message to the address you gave. Open the link in it to verify your address, then sign in with your email and password.</p>
${options.notice ? html`<p class="muted" role="status">${options.notice}</p>` : ''}
<form method="post" action="${options.continueAction}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<button type="submit">Continue</button>
</form>
<form method="post" action="${options.resendAction}">
<input type="hidden" name="_csrf" value="${options.csrf}">
<button type="submit" class="secondary">Resend the email</button>
</form>`,
  );
}

/**
 * The verification link's page. An unverified account's address is confirmed with the account's
 * password (whoever signed up chose it), or the owner replaces the password instead. Buttons, not
 * the GET: mail scanners that open links must not spend the token.
 */
export function verifyEmailPage(options: { csrf: string; token: string; passwordRequired: boolean; error?: string }): string {
  if (!options.passwordRequired) {
    return page(
      'Verify your email',
      html`<h1>Verify your email address</h1>
<form method="post" action="/verify-email">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="token" value="${options.token}">
<button type="submit">Verify my email address</button>
</form>`,
    );
  }
  return page(
    'Verify your email',
    html`<h1>Verify your email address</h1>
<p>To confirm that this JobSwipe account is yours, enter the password you chose when you created it.</p>
${options.error ? html`<p class="error" role="alert">${options.error}</p>` : ''}
<form method="post" action="/verify-email">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="token" value="${options.token}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Verify with my password</button>
</form>
<h2>You did not create this account, or forgot its password?</h2>
<p>Someone may have signed up with your address. Choose a new password instead: it replaces the old one,
signs out everyone using this account and disconnects its apps, and verifies your address.</p>
<form method="post" action="/verify-email/new-password">
<input type="hidden" name="_csrf" value="${options.csrf}">
<input type="hidden" name="token" value="${options.token}">
<button type="submit" class="secondary">Set a new password instead</button>
</form>`,
  );
}

export function emailVerifiedPage(): string {
  return page('Email verified', html`<h1>Your email address is verified</h1>
<p>Thank you. You can close this window and go back to the JobSwipe app.</p>`);
}

export function verificationRejectedPage(
  reason: 'unknown' | 'used' | 'expired',
  link: { kind: 'verification'; resend: { action: string; csrf: string } } | { kind: 'invitation' },
): string {
  const why = whyLinkFailed(reason, { lifetime: link.kind === 'invitation' ? 'invitations work for 7 days' : 'links work for 24 hours' });
  if (link.kind === 'invitation') {
    return page('Link not valid', html`<h1>This link cannot be used</h1>
<p>${why} Ask the person who invited you for a new invitation.</p>`);
  }
  return page('Link not valid', html`<h1>This link cannot be used</h1>
<p>${why} If your address still needs verifying, sign in to JobSwipe in this browser, then ask for a new link.</p>
<form method="post" action="${link.resend.action}">
<input type="hidden" name="_csrf" value="${link.resend.csrf}">
<button type="submit">Send me a new link</button>
</form>`);
}

export function resendAnswerPage(sent: boolean): string {
  return page(
    'Verification email',
    sent
      ? html`<h1>Check your email</h1>
<p>We sent a new verification link to your address. It works once, for 24 hours.</p>
<p><a href="/account">Go to your account</a></p>`
      : html`<h1>Nothing to send</h1>
<p>Sign in to JobSwipe in this browser with the account to verify (from any JobSwipe app), then open the link again. If your address is already verified, there is nothing more to do.</p>`,
  );
}

export function invitationPage(email: string): string {
  return page('You are invited', html`<h1>You are invited to JobSwipe</h1>
<p>This invitation is for <strong>${email}</strong>. Open the JobSwipe app, choose <strong>Sign in</strong>, then <strong>Create account</strong>, in this browser within 24 hours.</p>`);
}
