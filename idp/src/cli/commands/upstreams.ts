import type { Command } from '../context.ts';
import { table } from '../output.ts';
import { parse } from '../parse-args.ts';

export const UPSTREAMS_COMMANDS: Record<string, Command> = {
  'upstreams list': {
    usage: 'upstreams list                one line per upstream identity provider: id, name, type, issuer or endpoint, client id, scopes, callback (never the secret)',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ libraries: { upstreams } }) => {
        const rows = (await upstreams.list()).map((upstream) => [
          upstream.id,
          upstream.name,
          upstream.type,
          upstream.location,
          upstream.clientId,
          upstream.scopes || '-',
          `${context.config.issuer}/upstream/${upstream.id}/callback`,
        ]);
        table(['ID', 'NAME', 'TYPE', 'ISSUER_OR_ENDPOINT', 'CLIENT_ID', 'SCOPES', 'CALLBACK'], rows, 'no upstreams (add an `upstreams` array to the seed file and run `idp import --file F`)').forEach(context.io.out);
      });
    },
  },
};
