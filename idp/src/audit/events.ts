import type { KeyEvent } from '@jobswipe/keystore';
import type { AuditDetails } from './tables.ts';

/** Every event the audit log records, and what it means (docs/audit.md lists the same). */
export const AUDIT_EVENT_TYPES = {
  'login.success': 'a user signed in: details give the methods (amr: pwd, otp, hwk, user, mfa) and the level (acr)',
  'login.failure': 'a sign-in was refused: unknown account, wrong password or disabled account',
  'login.rate_limited': 'a sign-in attempt was refused by the per-IP or per-account limit',
  'mfa.verified': 'a second factor or a passkey was checked at sign-in (details: method code, recovery_code or passkey; failure: wrong or reused code, unknown passkey)',
  'mfa.recovery_code_used': 'a recovery code signed a user in (spent; details: how many are left)',
  'mfa.totp_enabled': 'a user turned on an authenticator app on /account or during a sign-in (failure: wrong password or first code)',
  'mfa.totp_disabled': 'a user turned off their authenticator app on /account (failure: wrong password or code)',
  'mfa.passkey_added': 'a user added a passkey on /account (failure: wrong password, or the passkey could not be checked)',
  'mfa.passkey_removed': 'a user removed a passkey on /account',
  'client_auth.failure': 'a client failed to authenticate at the token, introspection, revocation, PAR or device authorization endpoint',
  'client_auth.rate_limited': 'a client request was refused by the per-IP, per-client or request-rate limit of those endpoints',
  'consent.granted': 'a user approved an app (or a first-party app was approved without asking)',
  'consent.denied': 'a user refused an app',
  'device.code_rejected': 'a wrong, expired or used code was entered on the device page (RFC 8628)',
  'device.rate_limited': 'a device code was refused by the per-IP limit on wrong codes',
  'device.approved': 'a user signed a device in by entering its code (device authorization grant)',
  'device.denied': 'a user cancelled a device sign-in on the device page',
  'device.limit_reached': "a desktop sign-in (a new grant of a native client, in the browser or by device code) was refused: the user's plan allows no more desktop devices",
  'token.issued': 'the token endpoint issued tokens (authorization code, device code or client credentials)',
  'token.refreshed': 'a refresh token was redeemed (and rotated)',
  'token.refresh_replayed': 'the same client presented a refresh token again within REFRESH_TOKEN_REUSE_GRACE_SECONDS of its rotation and got the same new tokens again; the grant lives on',
  'token.revoked': 'a client revoked a token (RFC 7009); its grant went with it',
  'token.reuse_detected': 'a used refresh token or authorization code was presented again (outside the grace period, by a race, or after the chain moved on); its grant was revoked',
  'logout.end_session': 'a user signed out through an app (RP-initiated logout)',
  'logout.account': 'a user ended one or more of their sessions on /account',
  'app.revoked': "a user revoked an app's access on /account",
  'account.device_signed_out': 'a user signed one desktop device out on /account (its grant and tokens revoked)',
  'account.password_changed': 'a user changed their password on /account (failure: wrong current password, limits, or a refused new one)',
  'account.exported': 'a user downloaded their personal data on /account',
  'account.deleted': 'a user deleted their account on /account (failure: wrong password or limits)',
  'signup.completed': 'a new account was created on the sign-up page (unverified until its email is verified)',
  'signup.existing_address': 'the sign-up page was given an address that already has an account; its owner was mailed instead',
  'signup.rate_limited': 'a sign-up was refused by the per-IP limit',
  'email.verification_sent': 'a verification link was mailed (after sign-up or on request)',
  'email.verified': 'a user verified their email address with a mailed link',
  'email.verification_rejected': 'a verification link was refused: unknown, already used or expired',
  'password.reset_requested': 'a password reset link was asked for on /forgot-password (failure: no such account, or a disabled one; the link was mailed only on success)',
  'password.reset_rate_limited': 'a password reset request was refused by the per-IP limit, or not mailed because of the per-address limit',
  'password.reset_rejected': 'a password reset link was refused: unknown, already used, replaced or expired',
  'password.reset_completed': 'a user chose a new password with a reset link; every session and refresh token of theirs ended',
  'account.email_change_requested': 'a user asked on /account to change their email address; a confirmation link went to the new address (failure: wrong password or limits)',
  'account.email_changed': 'a user confirmed their new email address with the mailed link; the old address was notified',
  'account.email_change_rejected': 'an email change link was refused: unknown, used or expired, or the address was taken meanwhile',
  'key.created': 'a signing key was created',
  'key.promoted': 'a signing key started to sign',
  'key.retired': 'a signing key stopped signing (still published)',
  'key.removed': 'a retired signing key was removed',
  'key.revoked': 'a signing key was revoked',
  'key.sealed': 'a signing key stored in the clear was sealed under the key-encryption key',
  'key.rewrapped': 'a signing key was sealed under a new key-encryption key',
  'admin.user_created': 'an administrator created a user',
  'admin.user_invited': 'an administrator printed a sign-up invitation link (`idp users invite`)',
  'admin.reset_link_issued': 'an administrator printed a password reset link for a user (`idp users reset-link`)',
  'admin.user_disabled': 'an administrator disabled a user (every session and grant ended)',
  'admin.mfa_reset': "an administrator removed every factor of a user (authenticator app, recovery codes, passkeys: `idp users mfa-reset`)",
  'admin.client_created': 'an administrator registered a client',
  'admin.client_updated': "an administrator changed a client's metadata (redirect and logout URIs, name, scopes)",
  'admin.client_secret_rotated': "an administrator rotated a client's secret (the old one stopped working)",
  'admin.client_disabled': 'an administrator disabled a client (its grants and their tokens revoked)',
  'admin.sessions_revoked': "an administrator ended a user's sessions",
  'admin.import': 'an administrator imported a seed file',
  'admin.upstream_saved': 'an upstream identity provider was created or changed by `idp import` (details name it; never its secret)',
  'plan.saved': 'a plan was created or changed (`idp import`, or the admin API); details name the plan and the change',
  'upstream.sign_in': 'a user signed in through an upstream identity provider (details: upstream, whether the user was created by it)',
  'upstream.linked': "an upstream identity was linked to an existing account after that account's password was given (failure: wrong password or disabled account)",
  'upstream.unlinked': 'a user unlinked an upstream sign-in method on /account (failure: it was their last way in)',
  'upstream.rejected': 'an upstream sign-in was refused: forged or expired state, an upstream error (such as access_denied), an answer that failed validation, sign-up closed, no email, or a disabled account',
  'plan.changed': "a user was put on a plan (`idp plans set`, `idp import`, or the admin API); details give the plan before and after",
} as const;

export type AuditEventType = keyof typeof AUDIT_EVENT_TYPES;
export type AuditOutcome = 'success' | 'failure';

/** One event to record. Never put a password, token, code, cookie or secret in it. */
export interface AuditEvent {
  type: AuditEventType;
  outcome: AuditOutcome;
  /** The user's uuid (never an email: rows outlive the account). */
  userId?: string | undefined;
  clientId?: string | undefined;
  /** The provider session's uid. */
  sessionId?: string | undefined;
  ip?: string | undefined;
  userAgent?: string | undefined;
  details?: AuditDetails | undefined;
}

/** What a signing key event records: the key, its new state, and who caused it. */
export function keyEventDetails(event: KeyEvent, by: 'server' | 'administrator'): AuditDetails {
  return { kid: event.kid, ...(event.state ? { state: event.state } : {}), by };
}

/** A signing key event caused by a server (first start, scheduled rotation). */
export function keyAuditEvent(event: KeyEvent): AuditEvent {
  return { type: event.event, outcome: 'success', details: keyEventDetails(event, 'server') };
}
