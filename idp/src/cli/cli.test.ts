import { readdirSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcrypt';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OidcTables } from '@jobswipe/adapters';
import { asStoreOwner, cli } from '../../../test/support/cli.ts';
import { freePort, parseTable, spawnNode } from '../../../test/support/processes.ts';
import { createTestStore, STORE_KINDS, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { loadConfig } from '@jobswipe/config';
import type { KeystoreTables } from '@jobswipe/keystore';
import { loadKek, openKeystore } from '../signing-keys.ts';
import type { UserTables } from '../users/tables.ts';

const MIGRATIONS = readdirSync(new URL('../../../migrations/sql/', import.meta.url))
  .filter((name) => name.endsWith('.sql'))
  .sort()
  .map((name) => name.replace(/\.sql$/, ''));
const PASSWORD = 'correct horse battery staple';

// The two stores are independent: their suites run side by side, each one's steps in order.
describe.concurrent.each(STORE_KINDS)('idp CLI against the %s store', (kind) => {
  let store: TestStore;
  let env: Record<string, string>;

  const { run: idp, ok, fails } = cli(() => env);

  async function users(): Promise<Array<Record<string, string>>> {
    const { out } = await ok(['users', 'list']);
    return out[0] === 'no users' ? [] : parseTable(out);
  }

  async function clients(): Promise<{ rows: Array<Record<string, string>>; stdout: string }> {
    const { out, stdout } = await ok(['clients', 'list']);
    return { rows: out[0] === 'no clients' ? [] : parseTable(out), stdout };
  }

  const inStore = <T>(fn: (db: Kysely<OidcTables & UserTables>) => Promise<T>) => asStoreOwner(store, fn);

  /**
   * Client rows as the provider sees them: a sealed secret is opened with the store's keys. A secret
   * is never stored in the clear.
   */
  async function openClients(db: Kysely<OidcTables & UserTables>, rows: Array<{ id: string; payload: Record<string, unknown> }>) {
    const config = loadConfig(env);
    const keys = openKeystore(db as unknown as Kysely<KeystoreTables>, config, (await loadKek(config)).kek);
    const opened = new Map<string, Record<string, unknown>>();
    for (const row of rows) {
      const { client_secret_sealed: sealed, ...payload } = row.payload;
      expect(payload).not.toHaveProperty('client_secret');
      if (typeof sealed === 'string') payload['client_secret'] = await (await keys.columnCipher()).open(sealed, `client_secret:${row.id}`);
      opened.set(row.id, payload);
    }
    return opened;
  }

  /** Stored client metadata by client_id (absent ids are missing from the result). */
  const storedClients = (...clientIds: string[]) =>
    inStore(async (db) =>
      openClients(db, await db.selectFrom('oidc_models').select(['id', 'payload']).where('model', '=', 'Client').where('id', 'in', clientIds).execute()),
    );
  const storedClient = async (clientId: string) => (await storedClients(clientId)).get(clientId);

  /** Users by lower-cased email and clients by client_id, as stored, in one read. */
  const storedState = () =>
    inStore(async (db) => {
      const users = await db.selectFrom('users').select(['email', 'name', 'email_verified', 'password_hash', 'disabled_at']).execute();
      const clients = await db.selectFrom('oidc_models').select(['id', 'payload']).where('model', '=', 'Client').execute();
      return {
        users: new Map(users.map((user) => [user.email.toLowerCase(), user])),
        clients: await openClients(db, clients),
      };
    });

  beforeAll(async () => {
    store = await createTestStore(kind);
    env = { ...storeEnvironment(store), LOG_LEVEL: 'warn' };
  });

  afterAll(async () => {
    await store?.drop();
  });

  describe.sequential('step by step', () => {
    if (kind === 'postgres') {
      it('refuses to work on an unmigrated database; migrate applies every migration, then is a no-op', async () => {
        const refused = await fails(['users', 'list'], 1);
        expect(refused).toContain('run `npm run idp -- migrate` first');

        const first = await ok(['migrate']);
        expect(first.out).toEqual([`applied ${MIGRATIONS.length} migration(s): ${MIGRATIONS.join(', ')}`]);
        const second = await ok(['migrate']);
        expect(second.out).toEqual(['database is up to date']);
        expect(await users()).toEqual([]);
      }, 60_000);
    }

    describe('users', () => {
      let aliceId: string;

      it('users create reads the password from stdin and prints the new id', async () => {
        const { out } = await ok(['users', 'create', '--email', 'alice@example.com', '--name', 'Alice Liddell', '--password-stdin'], `${PASSWORD}\n`);
        expect(out).toHaveLength(1);
        const match = /^created user ([0-9a-f-]{36}) <alice@example\.com>$/.exec(out[0] ?? '');
        expect(match, out[0]).not.toBeNull();
        aliceId = match?.[1] ?? '';

        const hash = await inStore(async (db) =>
          (await db.selectFrom('users').select('password_hash').where('id', '=', aliceId).executeTakeFirst())?.password_hash,
        );
        expect(hash).toMatch(/^\$2b\$12\$/);
        // The trailing newline of the piped password is not part of it.
        expect(await bcrypt.compare(PASSWORD, hash ?? '')).toBe(true);
      });

      it('refuses a second user with the same email in another case: exit 1, one line', async () => {
        const message = await fails(['users', 'create', '--email', 'ALICE@Example.COM', '--name', 'Impostor', '--password-stdin'], 1, PASSWORD);
        expect(message).toMatch(/already exists/);
      });

      it('refuses bad input with one line and writes nothing', async () => {
        const noUser = (email: string) => ['users', 'create', '--email', email, '--name', 'Nobody', '--password-stdin'];
        // These fail before the store is opened, so they can run side by side.
        const [badEmail, noStdinFlag, emptyPassword] = await Promise.all([
          fails(noUser('not-an-email'), 2, PASSWORD),
          fails(['users', 'create', '--email', 'bob@example.com', '--name', 'Bob'], 2, PASSWORD),
          fails(noUser('empty@example.com'), 2, ''),
        ]);
        expect(badEmail).toContain('not-an-email is not a valid email address');
        expect(noStdinFlag).toContain('--password-stdin is required');
        expect(emptyPassword).toContain('no password on standard input');

        const tooShort = await fails(noUser('short@example.com'), 1, 'nine char');
        expect(tooShort).toContain('at least 10 characters');
        // 37 characters but 74 bytes: the limit is bcrypt's 72 bytes, not characters (two-byte letters,
        // not one repeated: the rules refuse repetition before length).
        const twoByteLetters = 'ñéüøåçßþðæ'.repeat(4);
        const tooLong = await fails(noUser('long@example.com'), 1, twoByteLetters.slice(0, 37));
        expect(tooLong).toContain('at most 72 bytes');
        // 72 bytes exactly is accepted.
        await ok(noUser('longest@example.com'), twoByteLetters.slice(0, 36));

        // users list shows the users created and none of the refused ones.
        const listed = await users();
        expect(listed.map((user) => user['EMAIL']).sort()).toEqual(['alice@example.com', 'longest@example.com']);
        const alice = listed.find((user) => user['EMAIL'] === 'alice@example.com');
        expect(alice).toMatchObject({ ID: aliceId, VERIFIED: 'no', NAME: 'Alice Liddell', STATUS: 'active' });
        expect(alice?.['CREATED']).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      }, 90_000);

      it('users disable marks the user disabled in users list', async () => {
        const disabled = await ok(['users', 'disable', '--email', 'Alice@Example.com']);
        expect(disabled.out).toEqual([`disabled user ${aliceId} <alice@example.com>`]);

        const list = await users();
        expect(list.find((user) => user['EMAIL'] === 'alice@example.com')?.['STATUS']).toMatch(/^disabled \d{4}-\d\d-\d\dT/);
        expect(list.find((user) => user['EMAIL'] === 'longest@example.com')?.['STATUS']).toBe('active');

        // Arguments go through zod before anything is looked up: not an address, or a control character (terminal escape).
        expect(await fails(['users', 'disable', '--email', 'not-an-address'], 2)).toContain('--email: not-an-address is not a valid email address');
        expect(await fails(['users', 'create', '--email', 'esc@example.com', '--name', 'Esc\u001b[2J', '--password-stdin'], 2, PASSWORD)).toContain(
          '--name contains a control character',
        );
        const unknown = await fails(['users', 'disable', '--email', 'nobody@example.com'], 1);
        expect(unknown).toContain('no user with email nobody@example.com');
      }, 60_000);
    });

    describe('clients', () => {
      it('clients create prints the client_id and the generated secret once; clients list never shows it', async () => {
        const { out, stdout } = await ok([
          'clients', 'create', '--client-id', 'web', '--client-name', 'JobSwipe Web',
          '--redirect-uri', 'http://localhost:3000/cb', '--first-party',
        ]);
        expect(out[0]).toBe('client_id: web');
        const secret = /^client_secret: ([A-Za-z0-9_-]{43})$/.exec(out[1] ?? '')?.[1];
        expect(secret, out[1]).toBeDefined();
        expect(stdout.split(secret ?? '-').length - 1).toBe(1);
        expect(await storedClient('web')).toMatchObject({ client_id: 'web', client_secret: secret, first_party: true });

        const listed = await clients();
        expect(listed.rows).toEqual([
          {
            CLIENT_ID: 'web',
            NAME: 'JobSwipe Web',
            TYPE: 'web',
            AUTH: 'client_secret_basic',
            GRANTS: 'authorization_code,refresh_token',
            FIRST_PARTY: 'yes',
            REDIRECT_URIS: 'http://localhost:3000/cb',
          },
        ]);
        expect(listed.stdout).not.toContain(secret);
      }, 60_000);

      it('a service client needs no redirect URIs', async () => {
        const { out } = await ok(['clients', 'create', '--client-id', 'svc', '--grant-type', 'client_credentials', '--scope', 'api:read']);
        expect(out[0]).toBe('client_id: svc');
        expect(out[1]).toMatch(/^client_secret: [A-Za-z0-9_-]{43}$/);
        expect(await storedClient('svc')).toMatchObject({
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          scope: 'api:read',
        });
      });

      it('--json gives the metadata; flags override it; a public client gets no secret', async () => {
        const json = JSON.stringify({
          client_id: 'from-json',
          client_name: 'Name In JSON',
          redirect_uris: ['https://jobs.example/cb'],
          token_endpoint_auth_method: 'none',
        });
        const { out } = await ok(['clients', 'create', '--json', json, '--client-id', 'spa']);
        expect(out).toEqual(['client_id: spa']);
        const row = (await clients()).rows.find((client) => client['CLIENT_ID'] === 'spa');
        expect(row).toMatchObject({ NAME: 'Name In JSON', AUTH: 'none', REDIRECT_URIS: 'https://jobs.example/cb', FIRST_PARTY: 'no' });
        const stored = await storedClients('from-json', 'spa');
        expect(stored.has('from-json')).toBe(false);
        expect(stored.get('spa')).toMatchObject({ client_id: 'spa', token_endpoint_auth_method: 'none' });
        expect(stored.get('spa')).not.toHaveProperty('client_secret');
      }, 60_000);

      it('refuses an invalid client, naming the problem, and a duplicate client_id; stores neither', async () => {
        const invalid = await fails(['clients', 'create', '--json', JSON.stringify({ client_id: 'broken', redirect_uris: ['not a url'] })], 1);
        expect(invalid).toContain('client broken');
        expect(invalid).toContain('redirect_uris');

        const duplicate = await fails(['clients', 'create', '--client-id', 'web', '--redirect-uri', 'http://localhost:3000/other'], 1);
        expect(duplicate).toContain('client web already exists');
        const reserved = await fails(['clients', 'create', '--client-id', 'jobswipe-account', '--redirect-uri', 'http://localhost:3000/cb'], 1);
        expect(reserved).toContain('reserved');

        const [notJson, notObject] = await Promise.all([
          fails(['clients', 'create', '--json', '{nope'], 2),
          fails(['clients', 'create', '--json', '[1,2]'], 2),
        ]);
        expect(notJson).toContain('--json is not valid JSON');
        expect(notObject).toContain('--json must be a JSON object');

        const listed = await clients();
        expect(listed.rows.map((client) => client['CLIENT_ID'])).toEqual(['spa', 'svc', 'web']);
        expect(listed.rows.find((client) => client['CLIENT_ID'] === 'web')?.['REDIRECT_URIS']).toBe('http://localhost:3000/cb');
      }, 90_000);
    });

    describe('import', () => {
      let seedPath: string;
      let seed: { clients: Array<Record<string, unknown>>; users: Array<Record<string, unknown>> };
      let importedHash: string;

      beforeAll(async () => {
        seedPath = join(store.dataDir, 'seed.json');
        importedHash = await bcrypt.hash('imported password', 12);
        seed = {
          clients: [
            {
              client_id: 'seed-web',
              client_name: 'Seeded Web App',
              client_secret: 'seeded-web-secret-0123456789abcdefghij',
              redirect_uris: ['https://seed.example/callback'],
            },
            {
              client_id: 'seed-svc',
              redirect_uris: [],
              response_types: [],
              grant_types: ['client_credentials'],
              scope: 'api:read',
            },
          ],
          users: [
            { email: 'ada@example.com', name: 'Ada', password: 'analytical engine' },
            { email: 'grace@example.com', name: 'Grace', password_hash: importedHash },
            { email: 'edsger@example.com', name: 'Edsger', password: 'goto considered harmful', email_verified: true },
          ],
        };
        await writeFile(seedPath, JSON.stringify(seed, null, 2));
      });

      it('imports 2 clients and 3 users', async () => {
        const { out } = await ok(['import', '--file', seedPath]);
        expect(out.at(-1)).toBe('2 clients, 3 users imported, 0 changed');

        const listed = await users();
        const seeded = listed.filter((user) => ['ada@example.com', 'grace@example.com', 'edsger@example.com'].includes(user['EMAIL'] ?? ''));
        expect(seeded.map((user) => [user['EMAIL'], user['NAME'], user['VERIFIED'], user['STATUS']]).sort()).toEqual([
          ['ada@example.com', 'Ada', 'no', 'active'],
          ['edsger@example.com', 'Edsger', 'yes', 'active'],
          ['grace@example.com', 'Grace', 'no', 'active'],
        ]);
        const stored = await storedState();
        // A given password_hash is stored as it is; a given password is hashed.
        expect(stored.users.get('grace@example.com')?.password_hash).toBe(importedHash);
        expect(await bcrypt.compare('analytical engine', stored.users.get('ada@example.com')?.password_hash ?? '')).toBe(true);

        expect(stored.clients.get('seed-web')).toMatchObject({
          client_name: 'Seeded Web App',
          client_secret: 'seeded-web-secret-0123456789abcdefghij',
          redirect_uris: ['https://seed.example/callback'],
        });
        expect(stored.clients.get('seed-svc')).toMatchObject({
          grant_types: ['client_credentials'],
          redirect_uris: [],
          response_types: [],
          scope: 'api:read',
        });
        // The service client's secret was generated, printed once, and stored.
        const svcSecret = stored.clients.get('seed-svc')?.['client_secret'];
        expect(typeof svcSecret).toBe('string');
        expect(out.filter((line) => line.includes(String(svcSecret)))).toHaveLength(1);
      }, 90_000);

      it('importing the same file again changes nothing', async () => {
        const before = await storedClient('seed-svc');
        const { out } = await ok(['import', '--file', seedPath]);
        expect(out).toEqual(['0 clients, 0 users imported, 0 changed']);
        expect(await storedClient('seed-svc')).toEqual(before);
      }, 60_000);

      it('a changed user name and client name count as 2 changed', async () => {
        const changed = structuredClone(seed);
        changed.users[0] = { ...changed.users[0], name: 'Ada Lovelace' };
        changed.clients[0] = { ...changed.clients[0], client_name: 'Seeded Web App v2' };
        await writeFile(seedPath, JSON.stringify(changed));
        const { out } = await ok(['import', '--file', seedPath]);
        expect(out.at(-1)).toBe('0 clients, 0 users imported, 2 changed');

        const stored = await storedState();
        expect(stored.users.get('ada@example.com')?.name).toBe('Ada Lovelace');
        expect(stored.users.get('grace@example.com')?.name).toBe('Grace');
        expect(stored.clients.get('seed-web')?.['client_name']).toBe('Seeded Web App v2');
      }, 60_000);

      it('a seed with one invalid client writes nothing, not even its valid user', async () => {
        const mixed = join(store.dataDir, 'mixed.json');
        await writeFile(
          mixed,
          JSON.stringify({
            users: [{ email: 'new-user@example.com', name: 'New', password: 'a perfectly fine password' }],
            clients: [{ client_id: 'bad-client', client_secret: 'bad-client-secret', redirect_uris: ['not a url'] }],
          }),
        );
        const message = await fails(['import', '--file', mixed], 1);
        expect(message).toContain('bad-client');
        expect(message).toContain('redirect_uris');

        const stored = await storedState();
        expect(stored.users.has('new-user@example.com')).toBe(false);
        expect(stored.users.size).toBe(5);
        expect(stored.clients.has('bad-client')).toBe(false);
      }, 60_000);

      it('refuses malformed JSON, a missing file and unknown top-level keys with one line', async () => {
        const malformed = join(store.dataDir, 'malformed.json');
        const unknownKey = join(store.dataDir, 'unknown-key.json');
        await writeFile(malformed, '{"users": [');
        await writeFile(unknownKey, JSON.stringify({ users: [], accounts: [] }));
        const missing = join(store.dataDir, 'does-not-exist.json');

        const results = await Promise.all([malformed, missing, unknownKey].map((file) => idp(['import', '--file', file])));
        for (const result of results) {
          expect(result.code).not.toBe(0);
          expect(result.err).toHaveLength(1);
          expect(result.stdout).toBe('');
        }
        expect(results[0]?.err[0]).toContain(`${malformed}: not valid JSON`);
        expect(results[1]?.err[0]).toContain(`${missing}: no such file`);
        expect(results[2]?.err[0]).toContain('Unrecognized key: "accounts"');
      });
    });

    it('keys revoke takes a kid that starts with "-" as the kid, not an option', async () => {
      // Thumbprint kids are base64url: about one in 32 starts with "-".
      const message = await fails(['keys', 'revoke', '-no-such-kid'], 1);
      expect(message).toContain('no published signing key has kid -no-such-kid');
      expect(await fails(['keys', 'revoke'], 2)).toContain('KID is required');
    });

    it('an unknown command exits 2 with one line', async () => {
      const message = await fails(['users', 'explode'], 2);
      expect(message).toContain('unknown command "users explode"');
    });

    if (kind === 'embedded') {
      it('runs commands through a server that holds the embedded store, and says "store in use" when it cannot', async () => {
        const port = await freePort();
        const server = spawnNode('idp/src/main.ts', [], { ...env, PORT: String(port), HOST: '127.0.0.1' });
        try {
          let healthy = false;
          for (const deadline = Date.now() + 45_000; Date.now() < deadline && !healthy; ) {
            healthy = await fetch(`http://127.0.0.1:${port}/healthz`).then((response) => response.ok, () => false);
            if (!healthy) await sleep(100);
          }
          expect(healthy).toBe(true);

          // The command is handed to the running server over DATA_DIR/admin.sock, stdin included.
          const created = await ok(['users', 'create', '--email', 'via-server@example.com', '--name', 'Via Server', '--password-stdin'], 'through the server 1\n');
          expect(created.out[0]).toMatch(/^created user [0-9a-f-]{36} <via-server@example\.com>$/);
          expect((await users()).map((user) => user['EMAIL'])).toContain('via-server@example.com');
          const duplicate = await fails(['users', 'create', '--email', 'VIA-server@example.com', '--password-stdin'], 1, 'through the server 2\n');
          expect(duplicate).toContain('already exists');
          expect(await fails(['users', 'frobnicate'], 2)).toContain('unknown command');

          // Without the socket, the CLI cannot reach the server and must not touch its store.
          await rm(join(store.dataDir, 'admin.sock'));
          expect(await fails(['users', 'list'], 1)).toContain('store in use');

          // A graceful stop releases the store.
          server.signal('SIGTERM');
          expect(await server.exited).toBe(0);
        } finally {
          await server.stop();
        }
        const list = await users();
        expect(list.map((user) => user['EMAIL'])).toEqual(expect.arrayContaining(['ada@example.com', 'via-server@example.com']));
      }, 90_000);
    }
  });
});
