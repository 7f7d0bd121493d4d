import { parseArgs } from 'node:util';
import { z } from 'zod';
import { AuthError, DesktopAuth, type BrowserOpener, type User } from './desktop-auth.ts';
import { aesGcmSecretStorage, STORE_KEY_VARIABLE, storeKeyFrom } from './secret-storage.ts';
import { systemBrowser } from './system-browser.ts';
import { fileTokenStore, memoryTokenStore, type TokenStore } from './token-store.ts';

/** Exit statuses: 0 signed in / done, 1 signed out or the sign-in failed, 2 wrong usage or setup. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

export const USAGE = `Usage: jobswipe-login <login|status|logout> [options]
  login [--no-open]        sign in through the browser (loopback redirect)
  login --device           sign in with a code entered on another device (RFC 8628)
  status                   prints "Signed in as <email>" (exit 0) or "Signed out" (exit 1)
  logout                   revokes the sign-in at JobSwipe and forgets it
Options:
  --issuer URL             default http://localhost:4000
  --client-id ID           default jobswipe-desktop
  --store FILE             the encrypted token file; its key is ${STORE_KEY_VARIABLE} (32 bytes, base64)
  --no-open                print the URL instead of opening a browser`;

const argsSchema = z.object({
  command: z.enum(['login', 'status', 'logout']),
  issuer: z.url({ protocol: /^https?$/ }).default('http://localhost:4000'),
  clientId: z.string().min(1).max(200).default('jobswipe-desktop'),
  store: z.string().min(1).optional(),
  noOpen: z.boolean().default(false),
  device: z.boolean().default(false),
});
export type CliArgs = z.infer<typeof argsSchema>;

class UsageError extends Error {}

export function parseCliArgs(argv: string[]): CliArgs {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (parsed.positionals.length !== 1) throw new UsageError('give exactly one command: login, status or logout');
  const result = argsSchema.safeParse({
    command: parsed.positionals[0],
    issuer: parsed.values.issuer,
    clientId: parsed.values['client-id'],
    store: parsed.values.store,
    noOpen: parsed.values['no-open'],
    device: parsed.values.device,
  });
  if (!result.success) throw new UsageError(result.error.issues.map((issue) => `${issue.path.join('.') || 'command'}: ${issue.message}`).join('; '));
  if (result.data.device && result.data.command !== 'login') throw new UsageError('--device goes with login');
  return result.data;
}

const OPTIONS = {
  issuer: { type: 'string' },
  'client-id': { type: 'string' },
  store: { type: 'string' },
  'no-open': { type: 'boolean' },
  device: { type: 'boolean' },
} as const;

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env: NodeJS.ProcessEnv;
  /** The browser for `login` without --no-open (the system browser by default). */
  browser?: BrowserOpener;
  /** How long `login` waits for the browser. */
  timeoutMs?: number;
}

/** Without --store tokens live in memory; with it, only encrypted under JOBSWIPE_STORE_KEY. */
function tokenStoreFor(args: CliArgs, io: CliIo): TokenStore {
  if (!args.store) return memoryTokenStore();
  const key = storeKeyFrom(io.env[STORE_KEY_VARIABLE]);
  if (!key) throw new Error(`${STORE_KEY_VARIABLE} is not set: refusing to write tokens to ${args.store} unencrypted (create a key with: openssl rand -base64 32)`);
  return fileTokenStore(args.store, aesGcmSecretStorage(key));
}

const signedInLine = (user: User) => `Signed in as ${user.email ?? user.sub}`;

export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let args: CliArgs;
  let auth: DesktopAuth;
  try {
    args = parseCliArgs(argv);
    const store = tokenStoreFor(args, io);
    auth = new DesktopAuth({ issuer: args.issuer, clientId: args.clientId, store, retry: { firstDelayMs: 500, maxDelayMs: 4_000, attempts: 4 } });
    await auth.load();
  } catch (error) {
    io.err(`jobswipe-login: ${(error as Error).message}`);
    if (error instanceof UsageError) io.err(USAGE);
    return EXIT.usage;
  }

  try {
    switch (args.command) {
      case 'login': {
        if (!auth.state().persistent) io.err('Note: no --store given, so this sign-in is kept in memory only and ends with this command.');
        const user = args.device
          ? await auth.signInWithDevice({
              onCode: async (prompt) => {
                io.out(`Visit ${prompt.verificationUri} and enter the code ${prompt.userCode}`);
                if (!args.noOpen) await (io.browser ?? systemBrowser).open(prompt.verificationUriComplete ?? prompt.verificationUri).catch(() => undefined);
              },
            })
          : await auth.signIn({
              onUrl: (url) => io.out(`Open this URL to sign in: ${url}`),
              opener: args.noOpen ? undefined : (io.browser ?? systemBrowser),
              ...(io.timeoutMs ? { timeoutMs: io.timeoutMs } : {}),
            });
        io.out(signedInLine(user));
        return EXIT.ok;
      }
      case 'status': {
        const state = auth.state();
        if (state.status === 'signed-out') {
          io.out('Signed out');
          return EXIT.failed;
        }
        try {
          await auth.accessToken();
        } catch (error) {
          if (error instanceof AuthError && error.code === 'ERR_SIGNED_OUT') {
            io.err(error.message);
            io.out('Signed out');
            return EXIT.failed;
          }
          // Offline: the refresh token is still held and unspent.
          io.err(`Warning: ${(error as Error).message}`);
        }
        io.out(signedInLine(state.user));
        return EXIT.ok;
      }
      case 'logout': {
        const { revoked } = await auth.signOut();
        if (!revoked && auth.state().notice) io.err(auth.state().notice ?? '');
        io.out('Signed out');
        return EXIT.ok;
      }
    }
  } catch (error) {
    io.err(error instanceof AuthError ? error.message : `jobswipe-login: ${(error as Error).message}`);
    return EXIT.failed;
  } finally {
    auth.stopBackgroundRefresh();
  }
}
