import type { AuditEvent } from '../audit/events.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import type { Logger } from '../logger.ts';
import { emailChangedNotice, emailChangeMail, emailChangeTakenMail, passwordChangedNotice } from '../mail/templates.ts';
import { sendInBackground, type Mailer } from '../mail/transport.ts';
import type { SessionService } from '../sessions/service.ts';
import type { AccountTokens, TokenRejection } from '../users/account-tokens.ts';
import { checkPasswordRules, PasswordRejected, type PasswordHasher } from '../users/passwords.ts';
import { isAddressTaken, type User, type UserQueries } from '../users/queries.ts';
import type { PersonalData, PersonalDataExport } from './personal-data.ts';

/** Where a request came from, as the audit log records it. */
export type EventOrigin = Pick<AuditEvent, 'ip' | 'userAgent'>;

/** The signed-in user acting on their own account, in one of their sessions. */
export interface AccountHolder {
  user: User;
  sessionUid: string;
  origin: EventOrigin;
}

/** A change the rules refuse; nothing was changed. The message is for the user. */
export class AccountChangeRefused extends Error {
  readonly code = 'ERR_ACCOUNT_CHANGE_REFUSED';
  readonly reason: 'rules' | 'unchanged';

  constructor(reason: 'rules' | 'unchanged', message: string) {
    super(message);
    this.reason = reason;
  }
}

/** An email change link that cannot take effect (the address may have been taken since it was mailed). */
export class EmailChangeRejected extends Error {
  readonly code = 'ERR_EMAIL_CHANGE_REJECTED';
  readonly reason: TokenRejection | 'taken';

  constructor(reason: TokenRejection | 'taken') {
    super(`email change link refused: ${reason}`);
    this.reason = reason;
  }
}

export interface AccountSettingsDependencies {
  issuer: string;
  users: UserQueries;
  hasher: PasswordHasher;
  sessions: SessionService;
  tokens: AccountTokens;
  personalData: PersonalData;
  mailer: Mailer;
  recordEvent: RecordEvent;
  log: Logger;
}

/**
 * The rules behind /account: what a signed-in user may do to their own sessions, apps, password,
 * address and account. Checking the current password (and its limits) is the caller's, before these.
 */
export function createAccountSettings(deps: AccountSettingsDependencies) {
  const mailLater = (mail: Parameters<typeof sendInBackground>[1], kind: string) => sendInBackground(deps.mailer, mail, deps.log, kind);

  return {
    async endOtherSessions({ user, sessionUid, origin }: AccountHolder) {
      const outcome = await deps.sessions.revokeOtherSessions(user.id, sessionUid, 'signed out from account page');
      await deps.recordEvent({
        ...origin,
        type: 'logout.account',
        outcome: 'success',
        userId: user.id,
        sessionId: sessionUid,
        details: { ended: 'other_sessions', sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
      });
      return outcome;
    },

    /** Ends one of the user's sessions (maybe the current one); `found` is false when it had ended. */
    async endSession({ user, sessionUid, origin }: AccountHolder, uid: string) {
      const outcome = await deps.sessions.revokeSession(user.id, uid, 'signed out from account page');
      await deps.recordEvent({
        ...origin,
        type: 'logout.account',
        outcome: outcome.found ? 'success' : 'failure',
        userId: user.id,
        sessionId: uid,
        details: { ended: uid === sessionUid ? 'this_session' : 'one_session', sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
      });
      return outcome;
    },

    /** Signs one desktop device out (its grant); nothing happens for a grant that is not the user's device. */
    async signOutDevice({ user, sessionUid, origin }: AccountHolder, grantId: string) {
      const outcome = await deps.sessions.signOutDevice(user.id, grantId);
      if (outcome.found) {
        await deps.recordEvent({ ...origin, type: 'account.device_signed_out', outcome: 'success', userId: user.id, sessionId: sessionUid, clientId: outcome.clientId, details: { grant_id: grantId } });
      }
      return outcome;
    },

    async revokeApp({ user, origin }: AccountHolder, clientId: string) {
      const outcome = await deps.sessions.revokeApp(user.id, clientId);
      await deps.recordEvent({ ...origin, type: 'app.revoked', outcome: 'success', userId: user.id, clientId, details: { grants: outcome.grantsRevoked } });
      return outcome;
    },

    /**
     * A new password (the current one already checked): every other session and every app's grant
     * ends, and reset links mailed before would undo it, so they end too.
     */
    async changePassword({ user, sessionUid, origin }: AccountHolder, passwords: { current: string; next: string }) {
      const event = { ...origin, type: 'account.password_changed', userId: user.id, sessionId: sessionUid } as const;
      const refuse = async (reason: AccountChangeRefused['reason'], message: string) => {
        await deps.recordEvent({ ...event, outcome: 'failure', details: { reason } });
        return new AccountChangeRefused(reason, message);
      };
      try {
        checkPasswordRules(passwords.next, { email: user.email, name: user.name });
      } catch (error) {
        if (!(error instanceof PasswordRejected)) throw error;
        throw await refuse('rules', `Your new ${error.message}. Nothing was changed.`);
      }
      if (passwords.next === passwords.current) {
        throw await refuse('unchanged', 'Your new password is the same as your current one. Choose another. Nothing was changed.');
      }
      // The user role may not write password hashes: this is the system path, for the signed-in user only.
      await deps.users.update(user.id, { passwordHash: await deps.hasher.hash(passwords.next) });
      await deps.tokens.revokeFor(user.id, ['reset_password', 'set_password']);
      const outcome = await deps.sessions.revokeAllButSession(user.id, sessionUid, 'password changed');
      mailLater(passwordChangedNotice(user.email, user.name, `${deps.issuer}/forgot-password`), 'password changed notice');
      await deps.recordEvent({ ...event, outcome: 'success', details: { sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked } });
      return outcome;
    },

    /**
     * Mails a confirmation link to the new address; the account keeps its address until the link is
     * used. A new address that already has an account gets a mail saying so instead.
     */
    async requestEmailChange({ user, sessionUid, origin }: AccountHolder, newAddress: string): Promise<void> {
      const owner = await deps.users.findByEmail(newAddress);
      if (owner) {
        mailLater(emailChangeTakenMail(owner.email, deps.issuer), 'email change to a taken address');
      } else {
        // Only the newest request counts: earlier links for other addresses end here.
        await deps.tokens.revokeFor(user.id, ['change_email']);
        const token = await deps.tokens.issue('change_email', { userId: user.id, email: newAddress });
        const url = `${deps.issuer}/account/email/confirm?token=${encodeURIComponent(token)}`;
        mailLater(emailChangeMail(newAddress, user.name, url), 'email change');
      }
      await deps.recordEvent({
        ...origin,
        type: 'account.email_change_requested',
        outcome: 'success',
        userId: user.id,
        sessionId: sessionUid,
        details: { address: owner ? 'taken' : 'free' },
      });
    },

    /** Spends an email change link: the new address takes effect, the old one is told. Returns the new address. */
    async confirmEmailChange(token: string, origin: EventOrigin): Promise<string> {
      const refuse = async (reason: EmailChangeRejected['reason'], userId?: string) => {
        await deps.recordEvent({
          ...origin,
          type: 'account.email_change_rejected',
          outcome: 'failure',
          userId: userId ?? (await deps.tokens.userOf(token)),
          details: { reason },
        });
        return new EmailChangeRejected(reason);
      };
      const spent = await deps.tokens.redeem(token, 'change_email');
      if ('rejected' in spent) throw await refuse(spent.rejected);
      const user = spent.userId ? await deps.users.findById(spent.userId) : undefined;
      if (!user || user.disabled_at || !spent.email) throw await refuse('unknown', user?.id);
      const newAddress = spent.email;
      try {
        await deps.users.update(user.id, { email: newAddress, emailVerified: true });
      } catch (error) {
        // Someone took the address since the link was mailed: the unique index on lower(email) refuses it.
        if (isAddressTaken(error)) throw await refuse('taken', user.id);
        throw error;
      }
      // Links sent to the old address (verification, reset, set password) must not act on the new one.
      await deps.tokens.revokeFor(user.id, ['verify_email', 'reset_password', 'set_password', 'change_email']);
      mailLater(emailChangedNotice(user.email, user.name, newAddress, deps.issuer), 'email changed notice');
      await deps.recordEvent({ ...origin, type: 'account.email_changed', outcome: 'success', userId: user.id });
      return newAddress;
    },

    /** Everything we keep about the user; undefined when the account is gone. */
    async exportData({ user, sessionUid, origin }: AccountHolder): Promise<PersonalDataExport | undefined> {
      const data = await deps.personalData.exportOf(user.id);
      if (!data) return undefined;
      await deps.recordEvent({
        ...origin,
        type: 'account.exported',
        outcome: 'success',
        userId: user.id,
        sessionId: sessionUid,
        details: { sessions: data.sessions.length, apps: data.connected_apps.length, events: data.audit_events.length },
      });
      return data;
    },

    /**
     * Disabled first, so no sign-in slips in while sessions and grants are revoked; then everything
     * goes (back-channel logout to every app), then the rows. The audit rows stay, under the uuid.
     */
    async deleteAccount({ user, sessionUid, origin }: AccountHolder): Promise<void> {
      await deps.users.disable(user.id);
      const outcome = await deps.sessions.revokeAll(user.id, 'account deleted');
      const erased = await deps.personalData.erase(user.id);
      await deps.recordEvent({
        ...origin,
        type: 'account.deleted',
        outcome: 'success',
        userId: user.id,
        sessionId: sessionUid,
        details: { sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked, deleted: erased.deleted },
      });
    },
  };
}

export type AccountSettings = ReturnType<typeof createAccountSettings>;
