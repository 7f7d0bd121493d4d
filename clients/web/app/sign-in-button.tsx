'use client';

import { signIn } from 'next-auth/react';
import { useState } from 'react';

/**
 * One click to the provider's login page: no NextAuth page in between. With `upstream` (a social
 * login button), the provider skips its login page too and sends the browser to that upstream.
 */
export function SignInButton({ callbackUrl, upstream }: { callbackUrl: string; upstream?: { id: string; name: string } }) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      disabled={busy}
      onClick={() => {
        setBusy(true);
        void signIn('jobswipe', { callbackUrl }, upstream ? { upstream: upstream.id } : undefined).catch(() => setBusy(false));
      }}
      className={upstream ? 'secondary' : undefined}
    >
      {upstream ? `Continue with ${upstream.name}` : 'Sign in'}
    </button>
  );
}
