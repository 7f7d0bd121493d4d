import { getServerSession } from 'next-auth';
import { getToken } from 'next-auth/jwt';
import { cookies, headers } from 'next/headers';
import Link from 'next/link';
import { redirect } from 'next/navigation';
import type { NextRequest } from 'next/server';
import { authOptions } from '../../src/auth-options';
import { settings } from '../../src/settings';
import { BILLING_PATH, signedInWithTwoFactors } from '../../src/step-up';
import { StepUpButton } from './step-up-button';

export const dynamic = 'force-dynamic';

/** The session as the server holds it (the encrypted cookie): its level is checked here, never in the browser. */
async function sessionToken() {
  const current = settings();
  const req = { cookies: await cookies(), headers: await headers() } as unknown as NextRequest;
  return getToken({ req, secret: current.secret, secureCookie: current.secureCookies });
}

/**
 * Billing: changes here cost money, so the page needs a sign-in with two factors
 * (urn:jobswipe:acr:mfa). A session without it is asked to verify again, with acr_values.
 */
export default async function Billing() {
  const session = await getServerSession(authOptions());
  if (!session?.user) redirect(`/?notice=sign-in-required&callbackUrl=${encodeURIComponent(BILLING_PATH)}`);
  const token = await sessionToken();

  if (!signedInWithTwoFactors(token)) {
    return (
      <>
        <h1>Billing</h1>
        <p id="step-up-required" role="status">
          Billing needs two-factor authentication. Verify it is you with your authenticator app or a passkey to continue.
        </p>
        <div className="actions">
          <StepUpButton />
          <Link className="button secondary" href="/dashboard">
            Back to the dashboard
          </Link>
        </div>
      </>
    );
  }

  return (
    <>
      <h1>Billing</h1>
      <p id="billing-verified">You signed in with two-factor authentication.</p>
      <dl>
        <dt>Account</dt>
        <dd id="email">{session.user.email}</dd>
        <dt>Payment method</dt>
        <dd id="payment-method">None on file</dd>
      </dl>
      <div className="actions">
        <Link className="button secondary" href="/dashboard">
          Back to the dashboard
        </Link>
      </div>
    </>
  );
}
