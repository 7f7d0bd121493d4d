import { withUser, type Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { date } from '../output.ts';
import { parse, required } from '../parse-args.ts';

export const SESSIONS_COMMANDS: Record<string, Command> = {
  'sessions list': {
    usage: 'sessions list --email E        one line per live session: id, started, device, apps, last seen',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ libraries: { sessions } }, user) => {
        const list = await sessions.list(user.id);
        for (const session of list) {
          const apps = session.apps.map((app) => app.clientId).join(',') || '-';
          context.io.out(
            [session.uid, date(session.startedAt), session.device, `apps=${apps}`, `last-seen=${date(session.lastSeenAt)}`, `ip=${session.ip}`, `agent=${JSON.stringify(session.userAgent)}`].join('  '),
          );
        }
        // Standard output holds session lines only; a person still learns why there are none.
        if (list.length === 0) context.io.err(`no live sessions for ${user.email}`);
      });
    },
  },

  'sessions revoke': {
    usage: 'sessions revoke --email E (--all | --id ID)  sign a user out: one session, or every session and app',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' }, all: { type: 'boolean' }, id: { type: 'string' } });
      const email = required(values.email, '--email');
      if (Boolean(values.all) === (values.id !== undefined)) throw new UsageError('give either --all or --id ID');
      if (values.id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(values.id)) throw new UsageError(`"${values.id}" is not a session id`);
      await withUser(context, email, async ({ libraries }, user) => {
        const outcome = await libraries.users.endSessions(user, values.id);
        context.io.out(`ended ${outcome.sessionsEnded} session(s) and revoked ${outcome.grantsRevoked} grant(s) of ${user.email}`);
        for (const delivery of outcome.deliveries ?? []) {
          context.io.out(
            delivery.delivered
              ? `logout token delivered to ${delivery.clientId}`
              : `logout token NOT delivered to ${delivery.clientId} after ${delivery.attempts} attempt(s): ${delivery.error ?? 'failed'}`,
          );
        }
      });
    },
  },
};
