'use client';

import { signIn } from 'next-auth/react';
import { useState } from 'react';

/** One click to the provider's login page: no NextAuth page in between. */
export function SignInButton({ callbackUrl }: { callbackUrl: string }) {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      disabled={busy}
      onClick={() => {
        setBusy(true);
        void signIn('jobswipe', { callbackUrl }).catch(() => setBusy(false));
      }}
    >
      Sign in
    </button>
  );
}
