import type { KeyEvent } from '@jobswipe/keystore';
import type { KeyAdministration } from '../../keys/administration.ts';
import type { CliContext, Command } from '../context.ts';
import { UsageError } from '../errors.ts';
import { date, table } from '../output.ts';
import { parse, required } from '../parse-args.ts';

export const KEYS_COMMANDS: Record<string, Command> = {
  'keys list': {
    usage: 'keys list                     signing keys: kid, state, created, activates, retires',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ libraries }) => {
        const rows = (await libraries.keys.list()).map((key) => [
          key.kid,
          key.state,
          date(key.createdAt),
          date(key.activatesAt),
          key.state === 'revoked' ? `revoked ${date(key.revokedAt)}` : date(key.retiresAt),
        ]);
        table(['KID', 'STATE', 'CREATED', 'ACTIVATES', 'RETIRES'], rows, 'no signing keys').forEach(context.io.out);
      });
    },
  },

  'keys rotate': {
    usage: 'keys rotate                   the next key signs from now on (one is created if none waits)',
    async run(context, args) {
      parse(args, {});
      await changeKeys(context, (keys) => keys.rotate(), 'Every server picks the change up within KEYSTORE_POLL_SECONDS.');
    },
  },

  'keys revoke': {
    usage: 'keys revoke KID               withdraw a key from the JWKS for good (for a leaked key)',
    async run(context, args) {
      // A kid is a base64url thumbprint and may start with "-": the one argument is never an option.
      const rest = args[0] === '--' ? args.slice(1) : args;
      if (rest.length !== 1) throw new UsageError(rest.length === 0 ? 'KID is required' : 'give exactly one KID');
      const kid = rest[0]!;
      if (!/^[A-Za-z0-9_-]{1,128}$/.test(kid)) throw new UsageError(`"${kid}" is not a key id`);
      await changeKeys(context, (keys) => keys.revoke(kid), 'Every server stops publishing it within KEYSTORE_POLL_SECONDS.');
    },
  },

  'keys rewrap': {
    usage: 'keys rewrap --new-kek-file F  seal every private key under a new key-encryption key',
    async run(context, args) {
      const values = parse(args, { 'new-kek-file': { type: 'string' } });
      const file = required(values['new-kek-file'], '--new-kek-file');
      const [{ readKekFile }, { administratorKeyEvent }] = await Promise.all([import('../../signing-keys.ts'), import('../../audit/administrator.ts')]);
      const newKek = await readKekFile(file);
      await context.withStore(async ({ keystore, libraries: { recordEvent } }) => {
        const keys = await keystore();
        await keys.open();
        // The column data key (client secrets) is re-sealed in the same transaction.
        const events = await keys.rewrap(newKek);
        for (const event of events) await recordEvent(administratorKeyEvent(event));
        context.io.out(`sealed ${events.length} signing key(s) under ${newKek.id}`);
        context.io.out(`Now set KEYSTORE_KEK_FILE=${file} (or KEYSTORE_KEK) on every server and restart them.`);
      });
    },
  },
};

function describeKeyEvent(event: KeyEvent): string {
  switch (event.event) {
    case 'key.created':
      return `created ${event.state} key ${event.kid}${event.activatesAt ? `, signing from ${date(event.activatesAt)}` : ''}`;
    case 'key.promoted':
      return `key ${event.kid} signs from now on`;
    case 'key.retired':
      return `key ${event.kid} retired: published until ${date(event.retiresAt ?? null)} so the tokens it signed still verify`;
    case 'key.revoked':
      return `key ${event.kid} revoked: no longer published`;
    default:
      return `${event.event} ${event.kid}`;
  }
}

/** Applies a change to the signing keys (the library records each event), printing each, then when servers see it. */
async function changeKeys(context: CliContext, change: (keys: KeyAdministration) => Promise<KeyEvent[]>, pickedUp: string): Promise<void> {
  await context.withStore(async ({ libraries }) => {
    for (const event of await change(libraries.keys)) context.io.out(describeKeyEvent(event));
    context.io.out(pickedUp);
  });
}
