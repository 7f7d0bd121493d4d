import { setTimeout as sleep } from 'node:timers/promises';
import { eventsAfter, formatEvent, latestEvents } from '../../audit/tail.ts';
import { verifyChain } from '../../audit/verify.ts';
import type { Command } from '../context.ts';
import { CommandError, UsageError } from '../errors.ts';
import { parse } from '../parse-args.ts';

/** How often `audit tail` looks for new events. */
const TAIL_POLL_MS = 1_000;

export const AUDIT_COMMANDS: Record<string, Command> = {
  'audit verify': {
    usage: 'audit verify                  walk the audit log\'s hash chain; name the first changed or missing event',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ database }) => {
        const report = await verifyChain(database.db);
        if (!report.intact) throw new CommandError(`audit chain broken at event ${report.id}: ${report.problem} (${report.count} event(s) before it are intact)`);
        context.io.out(`audit chain intact: ${report.count} events${report.head ? ` (last: ${report.head.id} ${report.head.hash})` : ''}`);
      });
    },
  },

  'audit tail': {
    usage: 'audit tail [--lines N] [--no-follow]  the newest audit events, one per line, then new ones as they come',
    async run(context, args) {
      const values = parse(args, { lines: { type: 'string' }, 'no-follow': { type: 'boolean' } });
      const lines = Number(values.lines ?? '10');
      if (!Number.isInteger(lines) || lines < 0 || lines > 10_000) throw new UsageError('--lines must be a whole number from 0 to 10000');
      await context.withStore(async ({ database }) => {
        const { db } = database;
        let last = 0;
        const print = (rows: Awaited<ReturnType<typeof latestEvents>>) => {
          for (const row of rows) {
            context.io.out(formatEvent(row));
            last = Number(row.id);
          }
        };
        const newest = await latestEvents(db, Math.max(lines, 1));
        if (lines === 0) last = Number(newest.at(-1)?.id ?? 0);
        else print(newest);
        if (values['no-follow']) return;
        // Polls by id until interrupted (Ctrl-C, or the admin socket's client going away).
        const signal = context.io.signal;
        while (!signal?.aborted) {
          try {
            await sleep(TAIL_POLL_MS, undefined, signal ? { signal } : {});
          } catch {
            return;
          }
          print(await eventsAfter(db, last));
        }
      });
    },
  },
};
