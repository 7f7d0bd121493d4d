import { ConfigError, loadConfig } from '@jobswipe/config';
import { AccountRejected } from '../users/accounts.ts';
import { ClientRejected } from '../clients/registry.ts';
import { COMMANDS } from './commands.ts';
import { createCliContext } from './context.ts';
import { CommandError, UsageError } from './errors.ts';

function help(): string {
  return [
    'usage: idp <command> [options]',
    '',
    ...Object.values(COMMANDS).map((command) => `  ${command.usage}`),
    '',
    'Configuration comes from the same environment variables as the server (see docs/configuration.md).',
  ].join('\n');
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('expected input on standard input, e.g. `printf %s "$PASSWORD" | idp ...`');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Runs one CLI invocation; returns the exit status. Every failure is one line on stderr. */
export async function runCli(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === 'help' || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(`${help()}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const twoWords = `${argv[0]} ${argv[1] ?? ''}`;
  const [name, args] = COMMANDS[twoWords] ? [twoWords, argv.slice(2)] : [argv[0] ?? '', argv.slice(1)];
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`idp: unknown command "${argv.slice(0, 2).join(' ')}" (run \`idp help\` for the list)\n`);
    return 2;
  }
  try {
    const config = loadConfig();
    await command.run(createCliContext(config, { out: (line) => process.stdout.write(`${line}\n`), readStdin }), args);
    return 0;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`idp: ${error.message.replaceAll('\n', ' ').replace(/\s+/g, ' ')}\n`);
      return 2;
    }
    if (error instanceof UsageError) {
      // One line, like every other failure: the synopsis without the description after it.
      process.stderr.write(`idp ${name}: ${error.message} (usage: idp ${command.usage.split(/\s{2,}/)[0]})\n`);
      return 2;
    }
    if (error instanceof CommandError || error instanceof AccountRejected || error instanceof ClientRejected) {
      process.stderr.write(`idp ${name}: ${error.message}\n`);
      return 1;
    }
    process.stderr.write(`idp ${name}: ${error instanceof Error ? error.message : String(error)}\n`);
    if (process.env['DEBUG']) console.error(error);
    return 1;
  }
}

process.exitCode = await runCli(process.argv.slice(2));
