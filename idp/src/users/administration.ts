import { actorEvent, ADMINISTRATOR, type Actor } from '../audit/administrator.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import type { PasswordReset } from '../password-reset/reset.ts';
import type { Registration } from '../signup/registration.ts';
import type { RevocationOutcome, SessionService } from '../sessions/service.ts';
import { AccountRejected, type createAccounts, type NewAccount } from './accounts.ts';
import { TOKEN_LIFETIMES } from './account-tokens.ts';
import type { User, UserQueries } from './queries.ts';

/** A single-use link handed to an administrator, and when it stops working. */
export interface IssuedLink {
  url: string;
  expiresAt: Date;
}

/** The link's expiry, read before it is issued: never later than the stored one. */
const expiryOf = (purpose: keyof typeof TOKEN_LIFETIMES) => new Date(Date.now() + TOKEN_LIFETIMES[purpose] * 1000);

export interface UserAdministrationDependencies {
  users: UserQueries;
  accounts: ReturnType<typeof createAccounts>;
  sessions: SessionService;
  passwordReset: PasswordReset;
  registration: Registration;
  recordEvent: RecordEvent;
}

/**
 * What an administrator does to users, from the CLI or the admin API. Each action is recorded with
 * who ran it (the actor); a refusal is an AccountRejected whose message names the problem.
 */
export function createUserAdministration(deps: UserAdministrationDependencies) {
  return {
    /** A user by id (undefined for an unknown or malformed id). */
    find(id: string): Promise<User | undefined> {
      return deps.users.findById(id);
    },

    /** One page of users by id, optionally those whose address starts with `emailPrefix`. */
    page(options: { emailPrefix?: string | undefined; after?: string | undefined; limit: number }): Promise<User[]> {
      return deps.users.page(options);
    },

    async create(account: NewAccount, actor: Actor = ADMINISTRATOR): Promise<User> {
      const user = await deps.accounts.create(account);
      await deps.recordEvent(actorEvent(actor, 'admin.user_created', { userId: user.id }));
      return user;
    },

    /**
     * A user without a password, and the link with which they set one (works once, 7 days, whatever
     * SIGNUP is; setting the password verifies the address).
     */
    async createWithPasswordLink(account: Omit<NewAccount, 'password' | 'passwordHash' | 'passwordLater'>, actor: Actor = ADMINISTRATOR): Promise<{ user: User; invitation: IssuedLink }> {
      const user = await deps.accounts.create({ ...account, passwordLater: true });
      await deps.recordEvent(actorEvent(actor, 'admin.user_created', { userId: user.id }));
      const expiresAt = expiryOf('set_password');
      const url = await deps.passwordReset.issueSetPasswordLink(user);
      return { user, invitation: { url, expiresAt } };
    },

    /** A sign-up invitation link for an address without an account (works once, 7 days). */
    async invite(email: string, actor: Actor = ADMINISTRATOR): Promise<IssuedLink> {
      const expiresAt = expiryOf('invitation');
      const url = await deps.registration.issueInvitation(email);
      await deps.recordEvent(actorEvent(actor, 'admin.user_invited', { details: { expires_in_days: 7 } }));
      return { url, expiresAt };
    },

    /** A password reset link for the user (works once, 1 hour; the reset signs them out everywhere). */
    async issueResetLink(user: User, actor: Actor = ADMINISTRATOR): Promise<IssuedLink> {
      if (user.disabled_at) throw new AccountRejected(`user ${user.email} is disabled; a reset link would not work`);
      const expiresAt = expiryOf('reset_password');
      const url = await deps.passwordReset.issueResetLink(user);
      await deps.recordEvent(actorEvent(actor, 'admin.reset_link_issued', { userId: user.id, details: { expires_in_minutes: 60 } }));
      return { url, expiresAt };
    },

    /** The user can no longer sign in, and is signed out everywhere at once, not when tokens expire. */
    async disable(user: User, actor: Actor = ADMINISTRATOR): Promise<{ alreadyDisabled: boolean; outcome: RevocationOutcome }> {
      const alreadyDisabled = user.disabled_at !== null;
      await deps.users.disable(user.id);
      const outcome = await deps.sessions.revokeAll(user.id, 'revoked by administrator');
      await deps.recordEvent(
        actorEvent(actor, 'admin.user_disabled', {
          userId: user.id,
          details: { already_disabled: alreadyDisabled, sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
        }),
      );
      return { alreadyDisabled, outcome };
    },

    /** Signs the user out: one session (`sessionId`), or every session and app. */
    async endSessions(user: User, sessionId?: string, actor: Actor = ADMINISTRATOR): Promise<RevocationOutcome> {
      let outcome: RevocationOutcome;
      if (sessionId !== undefined) {
        const one = await deps.sessions.revokeSession(user.id, sessionId, 'revoked by administrator');
        if (!one.found) throw new AccountRejected(`${user.email} has no live session ${sessionId} (see \`idp sessions list --email ${user.email}\`)`);
        outcome = one;
      } else {
        outcome = await deps.sessions.revokeAll(user.id, 'revoked by administrator');
      }
      await deps.recordEvent(
        actorEvent(actor, 'admin.sessions_revoked', {
          userId: user.id,
          ...(sessionId !== undefined ? { sessionId } : {}),
          details: { ended: sessionId !== undefined ? 'one_session' : 'all', sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
        }),
      );
      return outcome;
    },
  };
}

export type UserAdministration = ReturnType<typeof createUserAdministration>;
