import type { EventOrigin } from '../account/settings.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import type { Logger } from '../logger.ts';
import { passwordResetMail, passwordResetNotice } from '../mail/templates.ts';
import { sendInBackground, type Mailer } from '../mail/transport.ts';
import type { SessionService } from '../sessions/service.ts';
import type { AccountTokenPurpose, AccountTokens, TokenRejection } from '../users/account-tokens.ts';
import { checkPasswordRules, type PasswordHasher } from '../users/passwords.ts';
import type { User, UserQueries } from '../users/queries.ts';

/** A reset link that cannot be used (unknown, spent, replaced or expired); recorded as rejected. */
export class ResetLinkRejected extends Error {
  readonly code = 'ERR_RESET_LINK_REJECTED';
  readonly reason: TokenRejection;

  constructor(reason: TokenRejection) {
    super(`password reset link refused: ${reason}`);
    this.reason = reason;
  }
}

/** The links that set a password: a reset (1 hour), or the first password of a user an administrator created (7 days). */
export type PasswordLinkPurpose = Extract<AccountTokenPurpose, 'reset_password' | 'set_password'>;

/** Reset events name the link only when it was a set-password link (a reset's details stay as they were). */
const linkDetail = (purpose: PasswordLinkPurpose) => (purpose === 'set_password' ? { link: 'set_password' } : {});

export interface PasswordResetDependencies {
  issuer: string;
  users: UserQueries;
  hasher: PasswordHasher;
  sessions: SessionService;
  tokens: AccountTokens;
  mailer: Mailer;
  recordEvent: RecordEvent;
  log: Logger;
}

/** Forgot password: a mailed single-use link, and the new password it sets. */
export function createPasswordReset(deps: PasswordResetDependencies) {
  const resetUrl = (token: string) => `${deps.issuer}/reset-password?token=${encodeURIComponent(token)}`;
  const setPasswordUrl = (token: string) => `${deps.issuer}/set-password?token=${encodeURIComponent(token)}`;

  return {
    resetUrl,

    /**
     * Mails a reset link to the account at this address, if there is an active one. `addressLimited`
     * spends the address's point (true when it is over its limit: nothing is mailed then).
     */
    async mailResetLink(email: string, origin: EventOrigin, addressLimited: () => Promise<boolean>): Promise<void> {
      const user = await deps.users.findByEmail(email);
      if (await addressLimited()) {
        await deps.recordEvent({ ...origin, type: 'password.reset_rate_limited', outcome: 'failure', userId: user?.id, details: { limit: 'address' } });
        return;
      }
      if (!user || user.disabled_at) {
        await deps.recordEvent({ ...origin, type: 'password.reset_requested', outcome: 'failure', userId: user?.id, details: { reason: user ? 'disabled' : 'unknown_account' } });
        return;
      }
      const token = await deps.tokens.issue('reset_password', { userId: user.id });
      sendInBackground(deps.mailer, passwordResetMail(user.email, user.name, resetUrl(token)), deps.log, 'password reset');
      await deps.recordEvent({ ...origin, type: 'password.reset_requested', outcome: 'success', userId: user.id });
    },

    /**
     * Sets a new password with a reset link, or the first one with a set-password link (`purpose`).
     * The link is checked first, and spent only once the new password passes the rules
     * (PasswordRejected leaves it usable); then every session and every app's tokens end. Returns the
     * user whose password it was.
     */
    async completeReset(token: string, password: string, origin: EventOrigin, purpose: PasswordLinkPurpose = 'reset_password'): Promise<User> {
      const refuse = async (reason: TokenRejection) => {
        const userId = await deps.tokens.userOf(token);
        await deps.recordEvent({ ...origin, type: 'password.reset_rejected', outcome: 'failure', userId, details: { reason, ...linkDetail(purpose) } });
        return new ResetLinkRejected(reason);
      };
      const rejected = await deps.tokens.check(token, purpose);
      if (rejected) throw await refuse(rejected);
      // The rules refuse a password built from the account's own address or name, so look it up first.
      const ownerId = await deps.tokens.userOf(token);
      const owner = ownerId ? await deps.users.findById(ownerId) : undefined;
      if (!owner) throw await refuse('unknown');
      checkPasswordRules(password, { email: owner.email, name: owner.name });
      const passwordHash = await deps.hasher.hash(password);
      const spent = await deps.tokens.redeem(token, purpose);
      if ('rejected' in spent) throw await refuse(spent.rejected);
      const user = spent.userId ? await deps.users.findById(spent.userId) : undefined;
      if (!user || user.disabled_at) throw await refuse('unknown');

      // The mailed link proves the address too.
      await deps.users.update(user.id, { passwordHash, emailVerified: true });
      const otherLinks = await deps.tokens.revokeFor(user.id, ['reset_password', 'set_password']);
      const outcome = await deps.sessions.revokeAll(user.id, 'password reset');
      // A first password replaces none: no "your password was changed" notice then.
      if (purpose === 'reset_password') {
        sendInBackground(deps.mailer, passwordResetNotice(user.email, user.name, `${deps.issuer}/forgot-password`), deps.log, 'password reset notice');
      }
      await deps.recordEvent({
        ...origin,
        type: 'password.reset_completed',
        outcome: 'success',
        userId: user.id,
        details: { sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked, other_links: otherLinks, ...linkDetail(purpose) },
      });
      return user;
    },

    /** A reset link for an administrator to hand over (`idp users reset-link`): works once, for an hour. */
    async issueResetLink(user: User): Promise<string> {
      return resetUrl(await deps.tokens.issue('reset_password', { userId: user.id }));
    },

    /** A link with which a user created without a password sets one (admin API): works once, for 7 days. */
    async issueSetPasswordLink(user: User): Promise<string> {
      return setPasswordUrl(await deps.tokens.issue('set_password', { userId: user.id }));
    },
  };
}

export type PasswordReset = ReturnType<typeof createPasswordReset>;
