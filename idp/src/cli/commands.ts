import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { migrateToLatest } from '@jobswipe/migrations';
import { z } from 'zod';
import type { KeyEvent } from '@jobswipe/keystore';
import { readKekFile } from '../signing-keys.ts';
import { needsSecret, withGeneratedCredentials, type Metadata } from '../clients/registry.ts';
import { emailSchema, nameSchema } from '../users/accounts.ts';
import { checkPasswordRules, PasswordRejected } from '../users/passwords.ts';
import { createAccountTokens } from '../users/account-tokens.ts';
import type { CliContext, Store } from './context.ts';
import type { User } from '../users/queries.ts';
import { CommandError, UsageError } from './errors.ts';
import { importSeed } from './import.ts';
import { administratorEvent, administratorKeyEvent } from '../audit/administrator.ts';
import { eventsAfter, formatEvent, latestEvents } from '../audit/tail.ts';
import { verifyChain } from '../audit/verify.ts';

type Options = NonNullable<ParseArgsConfig['options']>;

/** How often `audit tail` looks for new events. */
const TAIL_POLL_MS = 1_000;

/**
 * `--name VALUE` becomes `--name=VALUE` for options that take a value, so a value starting with "-"
 * (a base64url session id or kid can) is read as the value, not refused as an ambiguous option.
 */
function attachValues(args: string[], options: Options): string[] {
  const out: string[] = [];
  for (let index = 0; index < args.length; index += 1) {
    const arg = args[index]!;
    const next = args[index + 1];
    if (arg === '--') {
      out.push(...args.slice(index));
      break;
    }
    const name = arg.startsWith('--') && !arg.includes('=') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined) {
      out.push(`${arg}=${next}`);
      index += 1;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/**
 * Every argument value: bounded, and free of control characters other than tab and newline (which a
 * --json value may hold), so nothing a command echoes can drive the terminal.
 */
const argumentValue = z
  .string()
  .max(65_536, 'is longer than 64 KiB')
  .refine((value) => !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/.test(value), 'contains a control character');

function parseWithPositionals<O extends Options>(args: string[], options: O, positionals: number) {
  let parsed;
  try {
    parsed = parseArgs({ args: attachValues(args, options), options, strict: true, allowPositionals: positionals > 0 });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  if (parsed.positionals.length > positionals) throw new UsageError(`unexpected argument "${parsed.positionals[positionals]}"`);
  const named = Object.entries(parsed.values).flatMap(([name, value]) => (Array.isArray(value) ? value : [value]).map((one) => [`--${name}`, one] as const));
  for (const [name, value] of [...named, ...parsed.positionals.map((one) => ['argument', one] as const)]) {
    if (typeof value !== 'string') continue;
    const checked = argumentValue.safeParse(value);
    if (!checked.success) throw new UsageError(`${name} ${checked.error.issues[0]?.message ?? 'is invalid'}`);
  }
  return parsed;
}

function parse<O extends Options>(args: string[], options: O) {
  return parseWithPositionals(args, options, 0).values;
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === '') throw new UsageError(`${flag} is required`);
  return value;
}

/** Aligned columns under a header, or `empty` when there are no rows. */
function table(header: string[], rows: string[][], empty: string): string[] {
  if (rows.length === 0) return [empty];
  const all = [header, ...rows];
  const widths = header.map((_, column) => Math.max(...all.map((row) => (row[column] ?? '').length)));
  return all.map((row) => row.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join('  ').trimEnd());
}

const date = (value: Date | null) => (value ? value.toISOString().replace(/\.\d{3}Z$/, 'Z') : '-');

/** Runs fn on the store with the user the email names; a missing user is the command's error. */
function withUser<T>(context: CliContext, email: string, fn: (store: Store, user: User) => Promise<T>): Promise<T> {
  if (!emailSchema.safeParse(email).success) throw new UsageError(`--email: ${email} is not a valid email address`);
  return context.withStore(async (store) => {
    const user = await store.users.findByEmail(email);
    if (!user) throw new CommandError(`no user with email ${email}`);
    return fn(store, user);
  });
}

export interface Command {
  usage: string;
  run(context: CliContext, args: string[]): Promise<void>;
}

export const COMMANDS: Record<string, Command> = {
  migrate: {
    usage: 'migrate                       apply pending database migrations',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ database }) => {
        const applied = await migrateToLatest(database.db);
        context.io.out(applied.length === 0 ? 'database is up to date' : `applied ${applied.length} migration(s): ${applied.join(', ')}`);
      }, { skipMigrations: true });
    },
  },

  'users create': {
    usage: 'users create --email E --name N --password-stdin [--email-verified]',
    async run(context, args) {
      const values = parse(args, {
        email: { type: 'string' },
        name: { type: 'string' },
        'password-stdin': { type: 'boolean' },
        'email-verified': { type: 'boolean' },
      });
      const email = required(values.email, '--email');
      if (!emailSchema.safeParse(email).success) throw new UsageError(`--email: ${email} is not a valid email address`);
      const name = nameSchema.parse(values.name ?? '');
      if (!values['password-stdin']) throw new UsageError('--password-stdin is required (passwords are never taken as arguments)');
      const password = (await context.io.readStdin()).replace(/\r?\n$/, '');
      if (password === '') throw new UsageError('no password on standard input');
      try {
        checkPasswordRules(password, { email, name });
      } catch (error) {
        if (error instanceof PasswordRejected) throw new CommandError(error.message);
        throw error;
      }
      await context.withStore(async ({ accounts, audit }) => {
        const user = await accounts.create({ email, name, password, emailVerified: values['email-verified'] ?? false });
        await audit.record(administratorEvent('admin.user_created', { userId: user.id }));
        context.io.out(`created user ${user.id} <${user.email}>`);
      });
    },
  },

  'users invite': {
    usage: 'users invite --email E         print a sign-up invitation link for E (SIGNUP=invite; works once, 7 days)',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      if (!emailSchema.safeParse(email).success) throw new UsageError(`--email: ${email} is not a valid email address`);
      if (context.config.signup !== 'invite') context.io.err(`warning: SIGNUP is ${context.config.signup}, not invite: the link only works with SIGNUP=invite`);
      await context.withStore(async ({ database, users, audit }) => {
        if (await users.findByEmail(email)) throw new CommandError(`a user with email ${email} already exists`);
        const token = await createAccountTokens(database.db).issue('invitation', { email });
        await audit.record(administratorEvent('admin.user_invited', { details: { expires_in_days: 7 } }));
        context.io.out(`${context.config.issuer}/invitation?token=${token}`);
      });
    },
  },

  'users reset-link': {
    usage: 'users reset-link --email E     print a password reset link for E (works once, 1 hour; the reset signs E out everywhere)',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ database, audit }, user) => {
        if (user.disabled_at) throw new CommandError(`user ${email} is disabled; a reset link would not work`);
        const token = await createAccountTokens(database.db).issue('reset_password', { userId: user.id });
        await audit.record(administratorEvent('admin.reset_link_issued', { userId: user.id, details: { expires_in_minutes: 60 } }));
        context.io.out(`${context.config.issuer}/reset-password?token=${token}`);
      });
    },
  },

  'users list': {
    usage: 'users list',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ users }) => {
        const rows = (await users.list()).map((user) => [
          user.id,
          user.email,
          user.email_verified ? 'yes' : 'no',
          user.name || '-',
          date(user.created_at),
          user.disabled_at ? `disabled ${date(user.disabled_at)}` : 'active',
        ]);
        table(['ID', 'EMAIL', 'VERIFIED', 'NAME', 'CREATED', 'STATUS'], rows, 'no users').forEach(context.io.out);
      });
    },
  },

  'users disable': {
    usage: 'users disable --email E       the user can no longer sign in; every session and grant ends',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ users, sessions, audit }, user) => {
        const service = await sessions();
        await users.disable(user.id);
        context.io.out(user.disabled_at ? `user ${user.email} was already disabled` : `disabled user ${user.id} <${user.email}>`);
        // A disabled account is signed out everywhere at once, not when its tokens happen to expire.
        const outcome = await service.revokeAll(user.id, 'revoked by administrator');
        await audit.record(
          administratorEvent('admin.user_disabled', {
            userId: user.id,
            details: { already_disabled: user.disabled_at !== null, sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
          }),
        );
        if (outcome.sessionsEnded + outcome.grantsRevoked > 0) {
          context.io.out(`ended ${outcome.sessionsEnded} session(s) and revoked ${outcome.grantsRevoked} grant(s)`);
        }
      });
    },
  },

  'clients create': {
    usage:
      'clients create [--json METADATA] [--client-id ID] [--client-name NAME] [--redirect-uri URI]... ' +
      '[--post-logout-redirect-uri URI]... [--grant-type TYPE]... [--response-type TYPE]... [--scope "A B"] ' +
      '[--token-endpoint-auth-method M] [--application-type web|native] [--backchannel-logout-uri URI] [--first-party]',
    async run(context, args) {
      const values = parse(args, {
        json: { type: 'string' },
        'client-id': { type: 'string' },
        'client-name': { type: 'string' },
        'redirect-uri': { type: 'string', multiple: true },
        'post-logout-redirect-uri': { type: 'string', multiple: true },
        'grant-type': { type: 'string', multiple: true },
        'response-type': { type: 'string', multiple: true },
        scope: { type: 'string' },
        'token-endpoint-auth-method': { type: 'string' },
        'application-type': { type: 'string' },
        'backchannel-logout-uri': { type: 'string' },
        'first-party': { type: 'boolean' },
      });
      let base: Record<string, unknown> = {};
      if (values.json !== undefined) {
        const parsed = z.record(z.string(), z.unknown()).safeParse(safeJson(values.json));
        if (!parsed.success) throw new UsageError('--json must be a JSON object of client metadata');
        base = parsed.data;
      }
      const flags: Record<string, unknown> = {
        client_id: values['client-id'],
        client_name: values['client-name'],
        redirect_uris: values['redirect-uri'],
        post_logout_redirect_uris: values['post-logout-redirect-uri'],
        grant_types: values['grant-type'],
        response_types: values['response-type'],
        scope: values.scope,
        token_endpoint_auth_method: values['token-endpoint-auth-method'],
        application_type: values['application-type'],
        backchannel_logout_uri: values['backchannel-logout-uri'],
        first_party: values['first-party'],
      };
      const given: Record<string, unknown> = {
        ...base,
        ...Object.fromEntries(Object.entries(flags).filter(([, value]) => value !== undefined)),
      };
      // A service client (client_credentials only) has no redirects and no authorization responses.
      const grants = given['grant_types'];
      if (Array.isArray(grants) && grants.length > 0 && grants.every((grant) => grant === 'client_credentials')) {
        given['redirect_uris'] ??= [];
        given['response_types'] ??= [];
      }
      const metadata: Metadata = withGeneratedCredentials(given);
      await context.withStore(async ({ clients, audit }) => {
        await clients.validate(metadata);
        if (await clients.find(metadata.client_id)) throw new CommandError(`client ${metadata.client_id} already exists`);
        await clients.save(metadata);
        await audit.record(administratorEvent('admin.client_created', { clientId: metadata.client_id }));
        context.io.out(`client_id: ${metadata.client_id}`);
        if (needsSecret(metadata) && typeof metadata['client_secret'] === 'string') {
          context.io.out(`client_secret: ${metadata['client_secret']}`);
          context.io.out('The secret is shown only this once: store it now.');
        }
      });
    },
  },

  'clients list': {
    usage: 'clients list',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ clients }) => {
        const rows = (await clients.list()).map((client) => [
          client.client_id,
          String(client['client_name'] ?? '-'),
          String(client['application_type'] ?? 'web'),
          String(client['token_endpoint_auth_method'] ?? 'client_secret_basic'),
          ((client['grant_types'] as string[] | undefined) ?? ['authorization_code', 'refresh_token']).join(','),
          client['first_party'] === true ? 'yes' : 'no',
          ((client['redirect_uris'] as string[] | undefined) ?? []).join(' ') || '-',
        ]);
        table(['CLIENT_ID', 'NAME', 'TYPE', 'AUTH', 'GRANTS', 'FIRST_PARTY', 'REDIRECT_URIS'], rows, 'no clients').forEach(context.io.out);
      });
    },
  },

  'keys list': {
    usage: 'keys list                     signing keys: kid, state, created, activates, retires',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ keystore }) => {
        const rows = (await (await keystore()).list()).map((key) => [
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
      await context.withStore(async ({ keystore, audit }) => {
        const keys = await keystore();
        await keys.open();
        for (const event of await keys.rotateNow()) {
          context.io.out(describeKeyEvent(event));
          await audit.record(administratorKeyEvent(event));
        }
        context.io.out('Every server picks the change up within KEYSTORE_POLL_SECONDS.');
      });
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
      await context.withStore(async ({ keystore, audit }) => {
        const keys = await keystore();
        await keys.open();
        for (const event of await keys.revoke(kid)) {
          context.io.out(describeKeyEvent(event));
          await audit.record(administratorKeyEvent(event));
        }
        context.io.out('Every server stops publishing it within KEYSTORE_POLL_SECONDS.');
      });
    },
  },

  'keys rewrap': {
    usage: 'keys rewrap --new-kek-file F  seal every private key under a new key-encryption key',
    async run(context, args) {
      const values = parse(args, { 'new-kek-file': { type: 'string' } });
      const file = required(values['new-kek-file'], '--new-kek-file');
      const newKek = await readKekFile(file);
      await context.withStore(async ({ keystore, audit }) => {
        const keys = await keystore();
        await keys.open();
        // The column data key (client secrets) is re-sealed in the same transaction.
        const events = await keys.rewrap(newKek);
        for (const event of events) await audit.record(administratorKeyEvent(event));
        context.io.out(`sealed ${events.length} signing key(s) under ${newKek.id}`);
        context.io.out(`Now set KEYSTORE_KEK_FILE=${file} (or KEYSTORE_KEK) on every server and restart them.`);
      });
    },
  },

  'sessions list': {
    usage: 'sessions list --email E        one line per live session: id, started, device, apps, last seen',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' } });
      const email = required(values.email, '--email');
      await withUser(context, email, async ({ sessions }, user) => {
        const list = await (await sessions()).list(user.id);
        for (const session of list) {
          const apps = session.apps.map((app) => app.clientId).join(',') || '-';
          context.io.out(
            [session.uid, date(session.startedAt), session.device, `apps=${apps}`, `last-seen=${date(session.lastSeenAt)}`, `ip=${session.ip}`, `agent=${JSON.stringify(session.userAgent)}`].join('  '),
          );
        }
        // Standard output holds session lines only; a person still learns why there are none.
        if (list.length === 0) context.io.err(`no live sessions for ${user.email}`);
      });
    },
  },

  'sessions revoke': {
    usage: 'sessions revoke --email E (--all | --id ID)  sign a user out: one session, or every session and app',
    async run(context, args) {
      const values = parse(args, { email: { type: 'string' }, all: { type: 'boolean' }, id: { type: 'string' } });
      const email = required(values.email, '--email');
      if (Boolean(values.all) === (values.id !== undefined)) throw new UsageError('give either --all or --id ID');
      if (values.id !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(values.id)) throw new UsageError(`"${values.id}" is not a session id`);
      await withUser(context, email, async ({ sessions, audit }, user) => {
        const service = await sessions();
        let outcome;
        if (values.id !== undefined) {
          const one = await service.revokeSession(user.id, values.id, 'revoked by administrator');
          if (!one.found) throw new CommandError(`${user.email} has no live session ${values.id} (see \`idp sessions list --email ${user.email}\`)`);
          outcome = one;
        } else {
          outcome = await service.revokeAll(user.id, 'revoked by administrator');
        }
        await audit.record(
          administratorEvent('admin.sessions_revoked', {
            userId: user.id,
            ...(values.id !== undefined ? { sessionId: values.id } : {}),
            details: { ended: values.id !== undefined ? 'one_session' : 'all', sessions: outcome.sessionsEnded, grants: outcome.grantsRevoked },
          }),
        );
        context.io.out(`ended ${outcome.sessionsEnded} session(s) and revoked ${outcome.grantsRevoked} grant(s) of ${user.email}`);
        for (const delivery of outcome.deliveries ?? []) {
          context.io.out(
            delivery.delivered
              ? `logout token delivered to ${delivery.clientId}`
              : `logout token NOT delivered to ${delivery.clientId} after ${delivery.attempts} attempt(s): ${delivery.error ?? 'failed'}`,
          );
        }
      });
    },
  },

  'audit verify': {
    usage: 'audit verify                  walk the audit log\'s hash chain; name the first changed or missing event',
    async run(context, args) {
      parse(args, {});
      await context.withStore(async ({ database }) => {
        const report = await verifyChain(database.db);
        if (!report.intact) throw new CommandError(`audit chain broken at event ${report.id}: ${report.problem} (${report.count} event(s) before it are intact)`);
        context.io.out(`audit chain intact: ${report.count} events${report.head ? ` (last: ${report.head.id} ${report.head.hash})` : ''}`);
      });
    },
  },

  'audit tail': {
    usage: 'audit tail [--lines N] [--no-follow]  the newest audit events, one per line, then new ones as they come',
    async run(context, args) {
      const values = parse(args, { lines: { type: 'string' }, 'no-follow': { type: 'boolean' } });
      const lines = Number(values.lines ?? '10');
      if (!Number.isInteger(lines) || lines < 0 || lines > 10_000) throw new UsageError('--lines must be a whole number from 0 to 10000');
      await context.withStore(async ({ database }) => {
        const { db } = database;
        let last = 0;
        const print = (rows: Awaited<ReturnType<typeof latestEvents>>) => {
          for (const row of rows) {
            context.io.out(formatEvent(row));
            last = Number(row.id);
          }
        };
        const newest = await latestEvents(db, Math.max(lines, 1));
        if (lines === 0) last = Number(newest.at(-1)?.id ?? 0);
        else print(newest);
        if (values['no-follow']) return;
        // Polls by id until interrupted (Ctrl-C, or the admin socket's client going away).
        const signal = context.io.signal;
        while (!signal?.aborted) {
          try {
            await sleep(TAIL_POLL_MS, undefined, signal ? { signal } : {});
          } catch {
            return;
          }
          print(await eventsAfter(db, last));
        }
      });
    },
  },

  import: {
    usage: 'import --file seed.json       create or update clients and users from a seed file',
    async run(context, args) {
      const values = parse(args, { file: { type: 'string' } });
      await importSeed(context, required(values.file, '--file'));
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

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError('--json is not valid JSON');
  }
}
