import type { Command } from '../context.ts';
import { parse, required } from '../parse-args.ts';

export const STORE_COMMANDS: Record<string, Command> = {
  migrate: {
    usage: 'migrate                       apply pending database migrations',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ database }) => {
        const { migrateToLatest } = await import('@jobswipe/migrations');
        const applied = await migrateToLatest(database.db);
        context.io.out(applied.length === 0 ? 'database is up to date' : `applied ${applied.length} migration(s): ${applied.join(', ')}`);
      }, { skipMigrations: true });
    },
  },

  import: {
    usage: 'import --file seed.json       create or update plans, clients and users from a seed file',
    async run(context, args) {
      const values = parse(args, { file: { type: 'string' } });
      const { importSeed } = await import('./import.ts');
      await importSeed(context, required(values.file, '--file'));
    },
  },
};
