import { html, type SafeHtml } from '../pages/html.ts';
import type { Mail } from './transport.ts';

/** One layout for every account mail: a greeting, paragraphs, one button-like link, a footer. */
function compose(to: string, subject: string, paragraphs: string[], link: { label: string; url: string } | undefined, footer: string): Mail {
  const text = [...paragraphs, ...(link ? [`${link.label}: ${link.url}`] : []), '', footer].join('\n\n');
  const body: SafeHtml = html`<!doctype html><html><body style="font-family:sans-serif">
${paragraphs.map((paragraph) => html`<p>${paragraph}</p>`)}
${link ? html`<p><a href="${link.url}">${link.label}</a></p><p style="color:#666">Or paste this address into your browser: ${link.url}</p>` : ''}
<p style="color:#666">${footer}</p>
</body></html>`;
  return { to, subject, text, html: body.value, links: link ? [link.url] : [] };
}

const FOOTER = 'You received this mail because someone used this address at JobSwipe. If it was not you, ignore it.';

export function verificationMail(to: string, name: string, url: string): Mail {
  return compose(
    to,
    'Verify your JobSwipe email address',
    [`Hello ${name || 'there'},`, 'Please confirm that this is your email address. The link works once, for 24 hours.'],
    { label: 'Verify my email address', url },
    FOOTER,
  );
}

export function alreadyRegisteredMail(to: string, signInUrl: string): Mail {
  return compose(
    to,
    'Someone tried to create a JobSwipe account with your address',
    [
      'Someone (perhaps you) tried to create a JobSwipe account with this email address, but you already have one. No new account was created.',
      'If it was you, sign in with your existing password instead.',
    ],
    { label: 'Go to JobSwipe', url: signInUrl },
    FOOTER,
  );
}

const NOTICE_FOOTER = 'This is a security notice about your JobSwipe account. You cannot turn these off.';

export function passwordResetMail(to: string, name: string, url: string): Mail {
  return compose(
    to,
    'Reset your JobSwipe password',
    [
      `Hello ${name || 'there'},`,
      'Someone (we hope you) asked to reset the password of your JobSwipe account. The link works once, for 1 hour.',
      'Resetting signs you out everywhere: every app has to ask you to sign in again.',
    ],
    { label: 'Choose a new password', url },
    'If you did not ask for this, ignore this mail: your password stays as it is.',
  );
}

/** After a reset: the owner learns of it even when someone else did it. */
export function passwordResetNotice(to: string, name: string, forgotUrl: string): Mail {
  return compose(
    to,
    'Your JobSwipe password was reset',
    [
      `Hello ${name || 'there'},`,
      'The password of your JobSwipe account was just reset with a link mailed to this address. You were signed out everywhere.',
      'If this was not you, someone can read your mail: secure your mailbox, then reset your password again.',
    ],
    { label: 'Reset my password', url: forgotUrl },
    NOTICE_FOOTER,
  );
}

export function passwordChangedNotice(to: string, name: string, forgotUrl: string): Mail {
  return compose(
    to,
    'Your JobSwipe password was changed',
    [
      `Hello ${name || 'there'},`,
      'The password of your JobSwipe account was just changed on your account page. Your other sessions were signed out.',
      'If this was not you, reset your password now.',
    ],
    { label: 'Reset my password', url: forgotUrl },
    NOTICE_FOOTER,
  );
}

export function emailChangeMail(to: string, name: string, url: string): Mail {
  return compose(
    to,
    'Confirm your new JobSwipe email address',
    [
      `Hello ${name || 'there'},`,
      'Someone (we hope you) asked to use this address for their JobSwipe account. Your account keeps its old address until you open this link. It works once, for 24 hours.',
    ],
    { label: 'Use this email address', url },
    FOOTER,
  );
}

/** The new address already belongs to another account: its owner hears of it, the requester learns nothing. */
export function emailChangeTakenMail(to: string, signInUrl: string): Mail {
  return compose(
    to,
    'Someone tried to move a JobSwipe account to your address',
    [
      'Someone asked to use this email address for their JobSwipe account, but it already belongs to your account. Nothing was changed.',
    ],
    { label: 'Go to JobSwipe', url: signInUrl },
    FOOTER,
  );
}

/** To the old address, once the new one is confirmed. */
export function emailChangedNotice(to: string, name: string, newAddress: string, signInUrl: string): Mail {
  return compose(
    to,
    'Your JobSwipe email address was changed',
    [
      `Hello ${name || 'there'},`,
      `Your JobSwipe account now uses the address ${newAddress}. Mail about your account, and password resets, go there from now on.`,
      'If this was not you, contact JobSwipe support at once: someone may have taken over your account.',
    ],
    { label: 'Go to JobSwipe', url: signInUrl },
    NOTICE_FOOTER,
  );
}
