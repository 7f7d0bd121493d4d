import { join, resolve } from 'node:path';
import { ConfigError, loadConfig, type Config } from '@jobswipe/config';
import { ADMIN_SOCKET_NAME, forwardCommand } from '../admin-socket.ts';
import type { CommandIo } from '../command-io.ts';
import { DataDirError, OWNER_ONLY_UMASK, prepareDataDir } from '../data-dir.ts';
import { createCliContext } from './context.ts';
import { UsageError } from './errors.ts';
import { runCommand } from './run.ts';
import { terminalLine } from './terminal-text.ts';

let stdin: Promise<string> | undefined;
async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new UsageError('expected input on standard input, e.g. `printf %s "$PASSWORD" | idp ...`');
  stdin ??= (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  })();
  return stdin;
}

// A reader that stops early (`idp users list | head -1`) closes the pipe: the command still finishes
// what it does, and its output goes nowhere, rather than ending in a stack trace.
let stdoutClosed = false;
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code !== 'EPIPE') throw error;
  stdoutClosed = true;
});

// The one place CLI output reaches the terminal, whether the command ran here or in a server.
const io: CommandIo = {
  out: (line) => {
    if (!stdoutClosed) process.stdout.write(`${terminalLine(line)}\n`);
  },
  err: (line) => process.stderr.write(`${terminalLine(line)}\n`),
  readStdin,
};

async function main(argv: string[]): Promise<number> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      io.err(`idp: ${error.message.replace(/\s+/g, ' ')}`);
      return 2;
    }
    throw error;
  }
  try {
    await prepareDataDir(config);
  } catch (error) {
    if (error instanceof DataDirError) {
      io.err(`idp: ${error.message}`);
      return 2;
    }
    throw error;
  }
  // A server running on the embedded store owns it: hand the command to that server.
  if (config.store.kind === 'embedded') {
    const wantsStdin = argv.some((arg) => arg.endsWith('-stdin'));
    const input = wantsStdin && !process.stdin.isTTY ? await readStdin() : undefined;
    const forwarded = await forwardCommand(join(resolve(config.dataDir), ADMIN_SOCKET_NAME), argv, input, io);
    if (forwarded !== undefined) return forwarded;
  }
  return runCommand(argv, io, (given) => createCliContext(given, io), config);
}

process.umask(OWNER_ONLY_UMASK);
process.exitCode = await main(process.argv.slice(2));
