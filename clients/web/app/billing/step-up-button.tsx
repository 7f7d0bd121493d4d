'use client';

import { signIn } from 'next-auth/react';
import { useState } from 'react';
import { BILLING_PATH, MFA_ACR } from '../../src/step-up';

/**
 * A new authorization that insists on two factors (acr_values): the provider asks this session for its
 * second factor (or to set one up), and the session that comes back carries the mfa level.
 */
export function StepUpButton() {
  const [busy, setBusy] = useState(false);
  return (
    <button
      type="button"
      disabled={busy}
      onClick={() => {
        setBusy(true);
        void signIn('jobswipe', { callbackUrl: BILLING_PATH }, { acr_values: MFA_ACR }).catch(() => setBusy(false));
      }}
    >
      Verify with two-factor authentication
    </button>
  );
}
