import { bcryptCost, checkPasswordRules, PasswordRejected, type PasswordHasher } from './passwords.ts';
import type { User, UserQueries } from './queries.ts';
import { emailSchema } from './schemas.ts';

export { emailSchema, nameSchema } from './schemas.ts';

export class AccountRejected extends Error {
  readonly code: string = 'ERR_ACCOUNT_REJECTED';
}

/** The address already belongs to an account (the admin API answers 409). */
export class AccountExists extends AccountRejected {
  override readonly code = 'ERR_ACCOUNT_EXISTS';
}

export interface NewAccount {
  email: string;
  name: string;
  emailVerified: boolean;
  /** Exactly one of password (hashed here) and passwordHash (an existing bcrypt hash), unless passwordLater. */
  password?: string | undefined;
  passwordHash?: string | undefined;
  /** Neither: the user sets a password with a link (the admin API's POST /admin/api/users without one). */
  passwordLater?: boolean | undefined;
}

/** Checks an account before anything is written: email, name, password rules or hash format. */
export function checkAccount(account: NewAccount): void {
  if (!emailSchema.safeParse(account.email).success) throw new AccountRejected(`${account.email}: not a valid email address`);
  if (account.passwordLater) {
    if (account.password !== undefined || account.passwordHash !== undefined) throw new AccountRejected(`${account.email}: a password is set later, with the link`);
  } else if ((account.password === undefined) === (account.passwordHash === undefined)) {
    throw new AccountRejected(`${account.email}: give either a password or a password_hash`);
  }
  if (account.password !== undefined) {
    try {
      checkPasswordRules(account.password, { email: account.email, name: account.name });
    } catch (error) {
      if (error instanceof PasswordRejected) throw new AccountRejected(`${account.email}: ${error.message}`);
      throw error;
    }
  }
  if (account.passwordHash !== undefined && bcryptCost(account.passwordHash) === undefined) {
    throw new AccountRejected(`${account.email}: password_hash is not a bcrypt hash`);
  }
}

export function createAccounts(users: UserQueries, hasher: PasswordHasher) {
  return {
    async create(account: NewAccount): Promise<User> {
      checkAccount(account);
      if (await users.findByEmail(account.email)) throw new AccountExists(`a user with email ${account.email} already exists`);
      const passwordHash = account.password === undefined ? account.passwordHash ?? null : await hasher.hash(account.password);
      return users.insert({ email: account.email, name: account.name, emailVerified: account.emailVerified, passwordHash });
    },

    /** Brings an existing user in line with the account; returns whether anything changed. */
    async reconcile(user: User, account: NewAccount): Promise<boolean> {
      checkAccount(account);
      const changes: Parameters<UserQueries['update']>[1] = {};
      if (user.name !== account.name) changes.name = account.name;
      if (user.email_verified !== account.emailVerified) changes.emailVerified = account.emailVerified;
      if (account.passwordHash !== undefined && account.passwordHash !== user.password_hash) {
        changes.passwordHash = account.passwordHash;
      }
      if (account.password !== undefined && !(await hasher.verify(account.password, user.password_hash))) {
        changes.passwordHash = await hasher.hash(account.password);
      }
      if (Object.keys(changes).length === 0) return false;
      await users.update(user.id, changes);
      return true;
    },
  };
}
