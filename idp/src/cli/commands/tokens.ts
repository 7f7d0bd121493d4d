import type { Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { date } from '../output.ts';
import { parse, required } from '../parse-args.ts';

const UNIT_SECONDS = { s: 1, m: 60, h: 60 * 60, d: 24 * 60 * 60 } as const;
/** A refresh token lives 30 days; a window of a year covers anything a deployment could configure. */
const MAX_WINDOW_SECONDS = 366 * UNIT_SECONDS.d;

/** `7d`, `24h`, `90m`, `3600s`: a window in seconds. */
export function windowSeconds(text: string): number {
  const match = /^([1-9]\d{0,5})([smhd])$/.exec(text);
  if (!match) throw new UsageError(`--within: "${text}" is not a window such as 24h or 7d (a number and s, m, h or d)`);
  const seconds = Number(match[1]) * UNIT_SECONDS[match[2] as keyof typeof UNIT_SECONDS];
  if (seconds > MAX_WINDOW_SECONDS) throw new UsageError('--within: at most 366d');
  return seconds;
}

export const TOKENS_COMMANDS: Record<string, Command> = {
  'tokens expiring': {
    usage: 'tokens expiring --within 7d    one line per client: client id, refresh tokens expiring in the window, the earliest expiry',
    async run(context, args) {
      const values = parse(args, { within: { type: 'string' } });
      const within = required(values.within, '--within');
      const seconds = windowSeconds(within);
      await context.withStore(async ({ queries }) => {
        const clients = await queries.expiry.refreshTokensByClient(seconds);
        for (const client of clients) context.io.out([client.clientId, `expiring=${client.count}`, `earliest=${date(client.earliest)}`].join('  '));
        // Standard output holds client lines only; a person still learns why there are none.
        if (clients.length === 0) context.io.err(`no refresh tokens expire within ${within}`);
      });
    },
  },
};
