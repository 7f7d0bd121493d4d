import type { EventOrigin } from '../account/settings.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import type { Logger } from '../logger.ts';
import { alreadyRegisteredMail, verificationMail } from '../mail/templates.ts';
import { sendInBackground, type Mailer } from '../mail/transport.ts';
import type { AccountTokens, TokenRejection } from '../users/account-tokens.ts';
import { AccountExists, emailSchema, nameSchema } from '../users/accounts.ts';
import { checkPasswordRules, PasswordRejected, type PasswordHasher } from '../users/passwords.ts';
import { isAddressTaken, type User, type UserQueries } from '../users/queries.ts';

export interface RegistrationDependencies {
  issuer: string;
  users: UserQueries;
  hasher: PasswordHasher;
  tokens: AccountTokens;
  mailer: Mailer;
  recordEvent: RecordEvent;
  log: Logger;
}

/** What the sign-up page asked for, as typed. */
export interface SignupRequest {
  email: string;
  name: string;
  password: string;
}

/** Where a sign-up came from: the request, the app it signs in to, and the invitation it carries. */
export interface SignupOrigin extends EventOrigin {
  clientId: string;
  invitation?: { token: string; email: string } | undefined;
}

export type SignupOutcome =
  /** The form needs another try; the message says why. */
  | { kind: 'refused'; message: string }
  /** The invitation was spent or replaced meanwhile. */
  | { kind: 'invitation_rejected' }
  /** The address has an account: its owner was mailed, and the answer must look the same as for a new one. */
  | { kind: 'existing' }
  | { kind: 'created'; user: User };

export type VerificationOutcome = { user: User } | { rejected: TokenRejection };

/**
 * Creating an account (sign-up, invitations) and proving its address (verification links). Whoever
 * signs up chooses the password before the address is proven, so confirming an unverified address
 * takes that password (checked by the page, under the sign-in limits) or replaces it (the reset).
 */
export function createRegistration(deps: RegistrationDependencies) {
  const verifyUrl = (token: string) => `${deps.issuer}/verify-email?token=${encodeURIComponent(token)}`;

  async function sendVerification(user: Pick<User, 'id' | 'email' | 'name'>, origin: EventOrigin, clientId: string | undefined, reason: 'signup' | 'resend') {
    const token = await deps.tokens.issue('verify_email', { userId: user.id });
    sendInBackground(deps.mailer, verificationMail(user.email, user.name, verifyUrl(token)), deps.log, 'verification');
    await deps.recordEvent({ ...origin, type: 'email.verification_sent', outcome: 'success', userId: user.id, clientId, details: { reason } });
  }

  async function refuseLink(reason: TokenRejection, origin: EventOrigin): Promise<{ rejected: TokenRejection }> {
    await deps.recordEvent({ ...origin, type: 'email.verification_rejected', outcome: 'failure', details: { reason } });
    return { rejected: reason };
  }

  /** The account a verification link is for, if the link can still be used (nothing is recorded). */
  async function accountToVerify(token: string): Promise<VerificationOutcome> {
    const rejected = await deps.tokens.check(token, 'verify_email');
    if (rejected) return { rejected };
    const userId = await deps.tokens.userOf(token);
    const user = userId ? await deps.users.findById(userId) : undefined;
    return user && !user.disabled_at ? { user } : { rejected: 'unknown' };
  }

  return {
    /** A sign-up invitation link for an address without an account (works once, 7 days). */
    async issueInvitation(email: string): Promise<string> {
      if (await deps.users.findByEmail(email)) throw new AccountExists(`a user with email ${email} already exists`);
      const token = await deps.tokens.issue('invitation', { email });
      return `${deps.issuer}/invitation?token=${token}`;
    },

    /** The address a still valid invitation is for. */
    invitationFor(token: string): Promise<string | undefined> {
      return deps.tokens.invitationFor(token);
    },

    /**
     * A new, unverified account, mailed a verification link; or, for an address that has one, a mail
     * to its owner. An invitation is spent once the form is acceptable, whatever the address.
     */
    async signUp(request: SignupRequest, origin: SignupOrigin): Promise<SignupOutcome> {
      const { invitation, clientId, ...from } = origin;
      const email = emailSchema.safeParse(request.email);
      const name = nameSchema.safeParse(request.name);
      if (!email.success) return { kind: 'refused', message: 'Enter a valid email address.' };
      if (!name.success) return { kind: 'refused', message: 'Your name must be at most 200 characters.' };
      if (invitation && invitation.email.toLowerCase() !== email.data.toLowerCase()) {
        return { kind: 'refused', message: 'Use the address your invitation was sent to.' };
      }
      try {
        checkPasswordRules(request.password, { email: email.data, name: name.data });
      } catch (error) {
        if (error instanceof PasswordRejected) return { kind: 'refused', message: `Choose another password: ${error.message}.` };
        throw error;
      }
      if (invitation && 'rejected' in (await deps.tokens.redeem(invitation.token, 'invitation'))) return { kind: 'invitation_rejected' };

      // Hashed either way, so an existing address costs the same time as a new one.
      const passwordHash = await deps.hasher.hash(request.password);
      const existing = await deps.users.findByEmail(email.data);
      const created = existing ? undefined : await insertUnlessTaken(deps.users, { email: email.data, name: name.data, passwordHash });
      if (!created) {
        const owner = existing ?? (await deps.users.findByEmail(email.data));
        sendInBackground(deps.mailer, alreadyRegisteredMail(email.data, deps.issuer), deps.log, 'already registered');
        await deps.recordEvent({ ...from, clientId, type: 'signup.existing_address', outcome: 'failure', userId: owner?.id });
        return { kind: 'existing' };
      }
      await deps.recordEvent({ ...from, clientId, type: 'signup.completed', outcome: 'success', userId: created.id, details: { invited: Boolean(invitation) } });
      await sendVerification(created, from, clientId, 'signup');
      return { kind: 'created', user: created };
    },

    /** A new verification link, if the account is still unverified and enabled; whether one was sent. */
    async resendVerification(userId: string | undefined, origin: EventOrigin, clientId?: string): Promise<boolean> {
      const user = userId ? await deps.users.findById(userId) : undefined;
      if (!user || user.email_verified || user.disabled_at) return false;
      await sendVerification(user, origin, clientId, 'resend');
      return true;
    },

    accountToVerify,

    /** A refused verification link, recorded. */
    refuseLink,

    /**
     * Spends the link and marks the address verified. An unverified account's password must have been
     * checked by the caller (`confirmedBy: 'password'`); a verified address only needs the link.
     */
    async confirmAddress(token: string, user: User, origin: EventOrigin): Promise<VerificationOutcome> {
      const spent = await deps.tokens.redeem(token, 'verify_email');
      if ('rejected' in spent) return refuseLink(spent.rejected, origin);
      await deps.users.update(user.id, { emailVerified: true });
      await deps.recordEvent({ ...origin, type: 'email.verified', outcome: 'success', userId: user.id, details: { confirmed_by: user.email_verified ? 'link' : 'password' } });
      return { user };
    },

    /**
     * "Set a new password instead": the link proves the mailbox, as a reset link would; it is spent
     * for a reset link, and the reset replaces the password, ends every session and verifies.
     */
    async resetInsteadOfVerifying(token: string, origin: EventOrigin): Promise<{ resetToken: string } | { rejected: TokenRejection }> {
      const found = await accountToVerify(token);
      if ('rejected' in found) return refuseLink(found.rejected, origin);
      const spent = await deps.tokens.redeem(token, 'verify_email');
      if ('rejected' in spent) return refuseLink(spent.rejected, origin);
      const resetToken = await deps.tokens.issue('reset_password', { userId: found.user.id });
      await deps.recordEvent({ ...origin, type: 'password.reset_requested', outcome: 'success', userId: found.user.id, details: { via: 'verification_link' } });
      return { resetToken };
    },
  };
}

export type Registration = ReturnType<typeof createRegistration>;

async function insertUnlessTaken(users: UserQueries, user: { email: string; name: string; passwordHash: string }) {
  try {
    return await users.insert({ ...user, emailVerified: false });
  } catch (error) {
    // Two sign-ups for one address at once: the second is an existing address.
    if (isAddressTaken(error)) return undefined;
    throw error;
  }
}
