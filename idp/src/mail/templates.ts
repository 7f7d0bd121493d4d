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
