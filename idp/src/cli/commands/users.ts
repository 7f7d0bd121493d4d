import { withUser, type Command } from '../context.ts';
import { CommandError, UsageError } from '../errors.ts';
import { date, table } from '../output.ts';
import { parse, required } from '../parse-args.ts';
import { emailSchema, nameSchema } from '../../users/schemas.ts';

export const USERS_COMMANDS: Record<string, Command> = {
  'users create': {
    usage: 'users create --email E --name N --password-stdin [--email-verified]',
    async run(context, args) {
      const values = parse(args, {
        email: { type: 'string' },
        name: { type: 'string' },
        'password-stdin': { type: 'boolean' },
        'email-verified': { type: 'boolean' },
      });
      const email = required(values.email, '--email');
      if (!emailSchema.safeParse(email).success) throw new UsageError(`--email: ${email} is not a valid email address`);
      const name = nameSchema.parse(values.name ?? '');
      if (!values['password-stdin']) throw new UsageError('--password-stdin is required (passwords are never taken as arguments)');
      const password = (await context.io.readStdin()).replace(/\r?\n$/, '');
      if (password === '') throw new UsageError('no password on standard input');
      // The password rules (and their dictionary) load only for the commands that check a password.
      const { checkPasswordRules, PasswordRejected } = await import('../../users/passwords.ts');
      try {
        checkPasswordRules(password, { email, name });
      } catch (error) {
        if (error instanceof PasswordRejected) throw new CommandError(error.message);
        throw error;
      }
      await context.withStore(async ({ libraries }) => {
        const user = await libraries.users.create({ email, name, password, emailVerified: values['email-verified'] ?? false });
        context.io.out(`created user ${user.id} <${user.email}>`);
      });
    },
  },

  'users invite': {
    usage: 'users invite --email E         print a sign-up invitation link for E (SIGNUP=invite; works once, 7 days)',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      if (!emailSchema.safeParse(email).success) throw new UsageError(`--email: ${email} is not a valid email address`);
      if (context.config.signup !== 'invite') context.io.err(`warning: SIGNUP is ${context.config.signup}, not invite: the link only works with SIGNUP=invite`);
      await context.withStore(async ({ libraries }) => context.io.out((await libraries.users.invite(email)).url));
    },
  },

  'users reset-link': {
    usage: 'users reset-link --email E     print a password reset link for E (works once, 1 hour; the reset signs E out everywhere)',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ libraries }, user) => context.io.out((await libraries.users.issueResetLink(user)).url));
    },
  },

  'users list': {
    usage: 'users list',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ queries: { users } }) => {
        const rows = (await users.list()).map((user) => [
          user.id,
          user.email,
          user.email_verified ? 'yes' : 'no',
          user.name || '-',
          date(user.created_at),
          user.disabled_at ? `disabled ${date(user.disabled_at)}` : 'active',
        ]);
        table(['ID', 'EMAIL', 'VERIFIED', 'NAME', 'CREATED', 'STATUS'], rows, 'no users').forEach(context.io.out);
      });
    },
  },

  'users disable': {
    usage: 'users disable --email E       the user can no longer sign in; every session and grant ends',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ libraries }, user) => {
        const { alreadyDisabled, outcome } = await libraries.users.disable(user);
        context.io.out(alreadyDisabled ? `user ${user.email} was already disabled` : `disabled user ${user.id} <${user.email}>`);
        if (outcome.sessionsEnded + outcome.grantsRevoked > 0) {
          context.io.out(`ended ${outcome.sessionsEnded} session(s) and revoked ${outcome.grantsRevoked} grant(s)`);
        }
      });
    },
  },

  'users mfa-reset': {
    usage: 'users mfa-reset --email E     remove every second factor of E (authenticator app, recovery codes, passkeys), e.g. a lost phone',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ libraries }, user) => {
        const removed = await libraries.mfa.reset(user.id);
        const nothing = !removed.totp && removed.recoveryCodes === 0 && removed.passkeys === 0;
        context.io.out(
          nothing
            ? `user ${user.email} had no second factor`
            : `removed the second factors of ${user.email}: authenticator app ${removed.totp ? 'removed' : 'none'}, ${removed.recoveryCodes} recovery code(s), ${removed.passkeys} passkey(s)`,
        );
      });
    },
  },
};
