import { setTimeout as sleep } from 'node:timers/promises';
import type { TailedEvent } from '../../audit/tail.ts';
import type { Command } from '../context.ts';
import { CommandError, UsageError } from '../errors.ts';
import { parse } from '../parse-args.ts';

/** How often `audit tail` looks for new events. */
const TAIL_POLL_MS = 1_000;

export const AUDIT_COMMANDS: Record<string, Command> = {
  'audit verify': {
    usage:
      'audit verify [--anchor ID:HASH]  walk the sealed hash chain (name the first missing or changed seal or event), report the unsealed tail; with --anchor, check the chain still holds that head',
    async run(context, args) {
      const values = parse(args, { anchor: { type: 'string' } });
      const { parseAnchor, verifyChain } = await import('../../audit/verify.ts');
      const anchor = values.anchor === undefined ? undefined : parseAnchor(values.anchor);
      if (values.anchor !== undefined && !anchor) {
        throw new UsageError('--anchor must be ID:HASH, a chain position and its 64 hex digit hash as `audit verify` and the "audit chain head" log line print them');
      }
      await context.withStore(async ({ database }) => {
        const report = await verifyChain(database.db, anchor);
        if (!report.intact) {
          throw new CommandError(report.anchor ? report.problem : `audit chain broken at seal ${report.id}: ${report.problem} (${report.count} seal(s) before it are intact)`);
        }
        context.io.out(`audit chain intact: ${report.count} sealed ${report.count === 1 ? 'event' : 'events'}${report.head ? ` (head ${report.head.id}:${report.head.hash})` : ''}`);
        const { count, oldest } = report.unsealed;
        const age = oldest ? `, the oldest written ${Math.max(0, (Date.now() - oldest.getTime()) / 1000).toFixed(1)} s ago` : '';
        context.io.out(`unsealed tail: ${count === 0 ? 'none' : `${count} event(s)${age}`}`);
        if (report.anchor) context.io.out(`anchor ${report.anchor.id}:${report.anchor.hash} is in the chain`);
      });
    },
  },

  'audit tail': {
    usage: 'audit tail [--lines N] [--no-follow]  the newest sealed audit events, one per line, then new ones as they are sealed',
    async run(context, args) {
      const values = parse(args, { lines: { type: 'string' }, 'no-follow': { type: 'boolean' } });
      const lines = Number(values.lines ?? '10');
      if (!Number.isInteger(lines) || lines < 0 || lines > 10_000) throw new UsageError('--lines must be a whole number from 0 to 10000');
      const { eventsAfter, formatEvent, latestEvents } = await import('../../audit/tail.ts');
      await context.withStore(async ({ database }) => {
        const { db } = database;
        let last = 0;
        const print = (rows: TailedEvent[]) => {
          for (const row of rows) {
            context.io.out(formatEvent(row.event));
            last = row.seq;
          }
        };
        const newest = await latestEvents(db, Math.max(lines, 1));
        if (lines === 0) last = newest.at(-1)?.seq ?? 0;
        else print(newest);
        if (values['no-follow']) return;
        // Follows the chain (not the ids, which can commit out of order) until interrupted (Ctrl-C, or
        // the admin socket's client going away).
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
