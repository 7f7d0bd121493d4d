import { chmod, rm } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { z } from 'zod';
import type { CommandIo } from './command-io.ts';

/**
 * The embedded store belongs to the server process, so while it runs the CLI hands its command to the
 * server over a Unix socket in DATA_DIR (mode 0600, in a 0700 directory: only the owner can connect).
 * One JSON line in ({argv, stdin}); JSON lines out ({out} / {err}), then {exit}.
 */
export const ADMIN_SOCKET_NAME = 'admin.sock';

const MAX_REQUEST = 256 * 1024;
const requestSchema = z.strictObject({
  argv: z.array(z.string().max(8192)).max(100),
  stdin: z.string().max(MAX_REQUEST).optional(),
});
const messageSchema = z.union([
  z.strictObject({ out: z.string() }),
  z.strictObject({ err: z.string() }),
  z.strictObject({ exit: z.number().int() }),
]);

/** Runs a forwarded command; its standard input is what io.readStdin() returns. */
export type RunForwarded = (argv: string[], io: CommandIo) => Promise<number>;

function readLine(socket: Socket, limit: number, onLine: (line: string) => void): void {
  let buffer = '';
  socket.setEncoding('utf8');
  const onData = (chunk: string) => {
    buffer += chunk;
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
      onLine(line);
      newline = buffer.indexOf('\n');
    }
    if (buffer.length > limit) socket.destroy();
  };
  socket.on('data', onData);
}

/** Serves forwarded CLI commands; returns a function that stops listening. */
export async function listenForCommands(path: string, run: RunForwarded, onError: (error: unknown) => void): Promise<() => Promise<void>> {
  await rm(path, { force: true });
  const callers = new Set<AbortController>();
  const server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    // A command that runs until its caller goes away (`audit tail`) stops when the socket closes.
    const caller = new AbortController();
    callers.add(caller);
    socket.on('close', () => {
      callers.delete(caller);
      caller.abort();
    });
    let handled = false;
    readLine(socket, MAX_REQUEST * 2, (line) => {
      if (handled) return;
      handled = true;
      const send = (message: z.infer<typeof messageSchema>) => {
        if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
      };
      let request: z.infer<typeof requestSchema>;
      try {
        request = requestSchema.parse(JSON.parse(line));
      } catch {
        send({ err: 'idp: malformed request on the admin socket' });
        send({ exit: 2 });
        socket.end();
        return;
      }
      run(request.argv, {
        out: (text) => send({ out: text }),
        err: (text) => send({ err: text }),
        readStdin: async () => request.stdin ?? '',
        signal: caller.signal,
      })
        .then((code) => send({ exit: code }), (error: unknown) => {
          onError(error);
          send({ err: 'idp: the server could not run the command' });
          send({ exit: 1 });
        })
        .finally(() => socket.end());
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(path, 0o600);
  return () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Commands that run until stopped (a following `audit tail`) end; others are waited for.
      for (const caller of callers) caller.abort();
      rm(path, { force: true }).catch(() => {});
    });
}

/** Sends a command to a running server; resolves with its exit status, or undefined if none answers. */
export async function forwardCommand(path: string, argv: string[], stdin: string | undefined, io: CommandIo): Promise<number | undefined> {
  return new Promise((resolve) => {
    let exit: number | undefined;
    const socket = connect(path);
    socket.on('error', () => resolve(undefined));
    socket.on('connect', () => {
      socket.write(`${JSON.stringify({ argv, ...(stdin === undefined ? {} : { stdin }) })}\n`);
    });
    readLine(socket, 16 * 1024 * 1024, (line) => {
      let json: unknown;
      try {
        json = JSON.parse(line);
      } catch {
        return;
      }
      const parsed = messageSchema.safeParse(json);
      if (!parsed.success) return;
      const message = parsed.data;
      if ('out' in message) io.out(message.out);
      else if ('err' in message) io.err(message.err);
      else exit = message.exit;
    });
    socket.on('close', () => resolve(exit ?? 1));
  });
}
