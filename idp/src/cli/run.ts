import type { Config } from '@jobswipe/config';
import { COMMANDS } from './commands.ts';
import type { CommandIo } from '../command-io.ts';
import type { CliContext } from './context.ts';
import { UsageError } from './errors.ts';

export function helpText(): string {
  return [
    'usage: idp <command> [options]',
    '',
    ...Object.values(COMMANDS).map((command) => `  ${command.usage}`),
    '',
    'Configuration comes from the same environment variables as the server (see docs/configuration.md).',
  ].join('\n');
}

/**
 * Runs one invocation of the CLI against a context (the CLI's own, or a running server's); returns the
 * exit status. Every failure is one line on the error stream.
 */
export async function runCommand(argv: string[], io: CommandIo, context: (config: Config) => CliContext, config: Config): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    // Line by line: each output line is one terminal line (a newline inside one is escaped).
    helpText().split('\n').forEach((line) => io.out(line));
    return argv.length === 0 ? 2 : 0;
  }
  const twoWords = `${argv[0]} ${argv[1] ?? ''}`;
  const [name, args] = COMMANDS[twoWords] ? [twoWords, argv.slice(2)] : [argv[0] ?? '', argv.slice(1)];
  const command = COMMANDS[name];
  if (!command) {
    io.err(`idp: unknown command "${argv.slice(0, 2).join(' ')}" (run \`idp help\` for the list)`);
    return 2;
  }
  try {
    await command.run(context(config), args);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      // One line, like every other failure: the synopsis without the description after it.
      io.err(`idp ${name}: ${error.message} (usage: idp ${command.usage.split(/\s{2,}/)[0]})`);
      return 2;
    }
    // Anything else (a refused account, client or plan, a command's own error, a store that cannot
    // be reached): its message, on one line.
    io.err(`idp ${name}: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
