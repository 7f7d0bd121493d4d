import { AUDIT_COMMANDS } from './commands/audit.ts';
import { CLIENTS_COMMANDS } from './commands/clients.ts';
import { KEYS_COMMANDS } from './commands/keys.ts';
import { PLANS_COMMANDS, USAGE_COMMANDS } from './commands/plans.ts';
import { SESSIONS_COMMANDS } from './commands/sessions.ts';
import { STORE_COMMANDS } from './commands/store.ts';
import { TOKENS_COMMANDS } from './commands/tokens.ts';
import { UPSTREAMS_COMMANDS } from './commands/upstreams.ts';
import { USERS_COMMANDS } from './commands/users.ts';
import type { Command } from './context.ts';

export type { Command };

/** Every command, by its one or two words, in the order `idp help` lists them. */
export const COMMANDS: Record<string, Command> = {
  migrate: STORE_COMMANDS['migrate']!,
  ...USERS_COMMANDS,
  ...CLIENTS_COMMANDS,
  ...KEYS_COMMANDS,
  ...SESSIONS_COMMANDS,
  ...TOKENS_COMMANDS,
  ...PLANS_COMMANDS,
  ...USAGE_COMMANDS,
  ...UPSTREAMS_COMMANDS,
  ...AUDIT_COMMANDS,
  import: STORE_COMMANDS['import']!,
};
