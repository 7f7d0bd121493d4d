import { getServerSession } from 'next-auth';
import Link from 'next/link';
import { authOptions } from '../src/auth-options';
import { settings } from '../src/settings';
import { SignInButton } from './sign-in-button';

export const dynamic = 'force-dynamic';

const NOTICES: Record<string, string> = {
  'signed-out-elsewhere': 'You were signed out from your JobSwipe account. Sign in again to continue.',
  'access-revoked': 'Your session has ended because access was revoked. Sign in again to continue.',
  'sign-in-required': 'Sign in to continue.',
};

/** Where a sign-in may return to: a path on this site only. */
function localPath(value: string | undefined): string {
  return value && value.startsWith('/') && !value.startsWith('//') ? value : '/dashboard';
}

export default async function Landing({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const params = await searchParams;
  // Own keys only: ?notice=constructor must not find Object.prototype's.
  const notice = typeof params['notice'] === 'string' && Object.hasOwn(NOTICES, params['notice']) ? NOTICES[params['notice']] : undefined;
  // NextAuth sends its errors here (pages.error): e.g. a denied or failed sign-in.
  // Shown only when it looks like one of NextAuth's error codes (e.g. OAuthCallback): no text from the URL otherwise.
  const error = typeof params['error'] === 'string' && /^[A-Za-z]{1,40}$/.test(params['error']) ? params['error'] : undefined;
  const callbackUrl = localPath(typeof params['callbackUrl'] === 'string' ? params['callbackUrl'] : undefined);
  const session = await getServerSession(authOptions());

  return (
    <>
      <h1>JobSwipe</h1>
      <p>Swipe through jobs that fit you.</p>
      {notice ? <p className="notice" role="status">{notice}</p> : null}
      {error ? (
        <p className="notice" role="alert">
          Signing in did not complete ({error}). Please try again.
        </p>
      ) : null}
      <div className="actions">
        {session ? (
          <Link className="button" href="/dashboard">
            Open your dashboard
          </Link>
        ) : (
          <>
            <SignInButton callbackUrl={callbackUrl} />
            {settings().upstreams.map((upstream) => (
              <SignInButton key={upstream.id} callbackUrl={callbackUrl} upstream={upstream} />
            ))}
          </>
        )}
      </div>
    </>
  );
}
