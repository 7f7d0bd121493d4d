import { sql, type Kysely, type Transaction } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOidcAdapter, InvalidUserIdError, withUser } from '@jobswipe/adapters';
import { Browser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { STORE_KINDS } from '../../../test/support/stores.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { createCliContext } from '../../src/cli/context.ts';
import { createSessionRegistry } from '../../src/sessions/registry.ts';
import { createSessionService } from '../../src/sessions/service.ts';
import type { Tables } from '../../src/store.ts';
import { createUserQueries } from '../../src/users/queries.ts';

/*
 * Row-level security (migrations/sql/0009_row_level_security.sql) and the roles the server runs as
 * (0007_roles.sql), on the running server's own database connection. Set-up that needs the owner of the
 * tables runs in a transaction that drops back to the connecting user (`set local role none`).
 */

const USER_TABLES = ['users', 'user_sessions', 'oidc_models'] as const;
const hour = () => Math.floor(Date.now() / 1000) + 3600;
const affected = (result: { numUpdatedRows?: bigint; numDeletedRows?: bigint }) => Number(result.numUpdatedRows ?? result.numDeletedRows);

describe.each(STORE_KINDS)('row-level security and database roles (%s)', (kind) => {
  let idp: TestServer;
  let db: Kysely<Tables>;
  let alice: string;
  let bob: string;

  /** As the connecting user, who owns the tables and so bypasses row-level security. */
  const asOwner = <T>(fn: (trx: Transaction<Tables>) => Promise<T>): Promise<T> =>
    db.transaction().execute(async (trx) => {
      await sql`set local role none`.execute(trx);
      return fn(trx);
    });

  const countAll = async (executor: Kysely<Tables>, table: (typeof USER_TABLES)[number]) =>
    Number((await sql<{ n: string }>`select count(*) as n from ${sql.table(table)}`.execute(executor)).rows[0]?.n);

  beforeAll(async () => {
    idp = await startTestServer(kind);
    db = idp.server.database.db;
    alice = (await idp.createUser({ email: 'alice@example.com', password: 'a long and good passphrase' })).id;
    bob = (await idp.createUser({ email: 'bob@example.com', password: 'another long passphrase' })).id;
    // Each user has a browser session (its registry row and the provider's Session) and a grant to an app;
    // a client row belongs to no one. All written on the system path, as the server writes them.
    const registry = createSessionRegistry(db);
    const Adapter = createOidcAdapter(db);
    for (const [user, name] of [[alice, 'alice'], [bob, 'bob']] as const) {
      await registry.record({ uid: `session-${name}`, userId: user, startedAt: new Date(), expiresAt: new Date(hour() * 1000), userAgent: 'test', ip: '127.0.0.1' });
      await new Adapter('Session').upsert(`jti-${name}`, { uid: `session-${name}`, accountId: user, exp: hour(), authorizations: {} }, 3600);
      await new Adapter('Grant').upsert(`grant-${name}`, { accountId: user, clientId: `app-${name}`, openid: { scope: 'openid' }, iat: hour() - 3600, exp: hour() }, 3600);
    }
    await new Adapter('Client').upsert('app-alice', { client_id: 'app-alice', client_name: "Alice's app" }, 0);
  }, 120_000);

  afterAll(async () => {
    await idp?.stop();
  });

  it('the server runs every query as jobswipe_system: no superuser, no BYPASSRLS, owner of no table', async () => {
    // Several at once, so that the Postgres pool opens several connections: each starts as the role.
    const sessions = await Promise.all(
      Array.from({ length: 4 }, () => sql<{ current_user: string; session_user: string }>`select current_user, session_user, pg_sleep(0.05)`.execute(db)),
    );
    for (const { rows } of sessions) {
      expect(rows[0]?.current_user).toBe('jobswipe_system');
      expect(rows[0]?.session_user).not.toBe('jobswipe_system');
    }
    const role = await sql<{ rolsuper: boolean; rolbypassrls: boolean }>`select rolsuper, rolbypassrls from pg_roles where rolname = current_user`.execute(db);
    expect(role.rows).toEqual([{ rolsuper: false, rolbypassrls: false }]);
    const owners = await sql<{ tablename: string; tableowner: string }>`select tablename, tableowner from pg_tables where schemaname = 'public'`.execute(db);
    expect(owners.rows.map((row) => row.tablename)).toEqual(expect.arrayContaining([...USER_TABLES, 'signing_keys']));
    expect(owners.rows.filter((row) => row.tableowner === 'jobswipe_system' || row.tableowner === 'jobswipe_user')).toEqual([]);
    // With the server's rights, the system path sees every user's rows: the policy for it is explicit.
    expect(await countAll(db, 'users')).toBe(2);
    expect(await countAll(db, 'user_sessions')).toBe(2);
  });

  it('the CLI runs commands as jobswipe_system, and `idp migrate` (skipMigrations) as the owner', async () => {
    const io = { out: () => {}, err: () => {}, readStdin: async () => '' };
    const whoAmI = (database: { db: Kysely<Tables> }) =>
      sql<{ current_user: string; session_user: string }>`select current_user, session_user`.execute(database.db).then(({ rows }) => rows[0]);
    // The embedded store belongs to the server: the CLI runs on the server's database (the admin socket).
    const { database, queries, libraries } = idp.server;
    const context = createCliContext(idp.server.config, io, kind === 'embedded' ? { database, queries, libraries } : undefined);
    expect((await context.withStore(({ database }) => whoAmI(database)))?.current_user).toBe('jobswipe_system');
    const migrating = await context.withStore(({ database }) => whoAmI(database), { skipMigrations: true });
    expect(migrating?.current_user).toBe(migrating?.session_user);
    expect(migrating?.current_user).not.toBe('jobswipe_system');
    // The owner's transaction ended with the command: the server is back to its role.
    expect((await whoAmI(idp.server.database))?.current_user).toBe('jobswipe_system');
  });

  it("with Alice's id set, Bob's rows in users, user_sessions and oidc_models are invisible", async () => {
    const seen = await withUser(db, alice, async (trx) => ({
      users: await trx.selectFrom('users').select('id').execute(),
      sessions: await trx.selectFrom('user_sessions').select(['session_uid', 'user_id']).execute(),
      models: await trx.selectFrom('oidc_models').select(['model', 'id', 'account_id']).orderBy('model').execute(),
      bobById: await trx.selectFrom('users').selectAll().where('id', '=', bob).execute(),
      bobsGrant: await trx.selectFrom('oidc_models').selectAll().where('id', '=', 'grant-bob').execute(),
    }));
    expect(seen.users).toEqual([{ id: alice }]);
    expect(seen.sessions).toEqual([{ session_uid: 'session-alice', user_id: alice }]);
    // Alice's grant and session; not Bob's, and not the client, which belongs to no one.
    expect(seen.models).toEqual([
      { model: 'Grant', id: 'grant-alice', account_id: alice },
      { model: 'Session', id: 'jti-alice', account_id: alice },
    ]);
    expect(seen.bobById).toEqual([]);
    expect(seen.bobsGrant).toEqual([]);
  });

  it("with Alice's id set, Bob's rows are unwritable, and the user role may not insert, delete or touch credentials", async () => {
    const writes = await withUser(db, alice, async (trx) => ({
      bobsName: affected(await trx.updateTable('users').set({ name: 'Mallory' }).where('id', '=', bob).executeTakeFirst()),
      bobsSession: affected(await trx.updateTable('user_sessions').set({ ended_at: new Date() }).where('user_id', '=', bob).executeTakeFirst()),
      everyName: affected(await trx.updateTable('users').set({ updated_at: new Date() }).executeTakeFirst()),
    }));
    // Only her own row: a query that forgot its WHERE still reaches one user.
    expect(writes).toEqual({ bobsName: 0, bobsSession: 0, everyName: 1 });
    expect((await createUserQueries(db).findById(bob))?.name).toBe('Test User');

    const refused = (fn: (trx: Transaction<Tables>) => Promise<unknown>) => expect(withUser(db, alice, fn)).rejects.toThrow(/permission denied/);
    await refused((trx) => trx.deleteFrom('user_sessions').where('user_id', '=', alice).execute());
    await refused((trx) => trx.deleteFrom('oidc_models').where('account_id', '=', alice).execute());
    await refused((trx) =>
      trx.insertInto('user_sessions').values({ session_uid: 'planted', user_id: bob, started_at: new Date(), last_seen_at: new Date(), expires_at: new Date(), device: 'x', user_agent: 'x', ip: 'x' }).execute(),
    );
    await refused((trx) => trx.updateTable('users').set({ disabled_at: null, password_hash: 'x', email: 'x@example.com' }).where('id', '=', alice).execute());
  });

  it("row-level security alone refuses Bob's rows, even to a user role with every right on the tables", async () => {
    // Rights a later migration might grant by mistake: the policies, not the grants, must hold.
    await asOwner((trx) => sql`grant insert, update, delete on users, user_sessions, oidc_models to jobswipe_user`.execute(trx));
    try {
      const writes = await withUser(db, alice, async (trx) => ({
        bobsEmail: affected(await trx.updateTable('users').set({ email: 'mallory@example.com' }).where('id', '=', bob).executeTakeFirst()),
        bobsSessions: affected(await trx.deleteFrom('user_sessions').where('user_id', '=', bob).executeTakeFirst()),
        bobsGrant: affected(await trx.updateTable('oidc_models').set({ payload: sql`payload` }).where('id', '=', 'grant-bob').executeTakeFirst()),
        bobsModels: affected(await trx.deleteFrom('oidc_models').where('account_id', '=', bob).executeTakeFirst()),
        bob: affected(await trx.deleteFrom('users').where('id', '=', bob).executeTakeFirst()),
      }));
      expect(writes).toEqual({ bobsEmail: 0, bobsSessions: 0, bobsGrant: 0, bobsModels: 0, bob: 0 });

      const violates = (fn: (trx: Transaction<Tables>) => Promise<unknown>) =>
        expect(withUser(db, alice, fn)).rejects.toThrow(/row-level security/);
      // WITH CHECK: no row may be written as Bob's, whether inserted or moved over from Alice.
      await violates((trx) =>
        trx.insertInto('user_sessions').values({ session_uid: 'planted', user_id: bob, started_at: new Date(), last_seen_at: new Date(), expires_at: new Date(), device: 'x', user_agent: 'x', ip: 'x' }).execute(),
      );
      await violates((trx) => trx.insertInto('oidc_models').values({ model: 'Grant', id: 'planted', payload: JSON.stringify({ accountId: bob, clientId: 'app-bob' }) }).execute());
      await violates((trx) => trx.updateTable('user_sessions').set({ user_id: bob }).where('user_id', '=', alice).execute());
      await violates((trx) => trx.updateTable('oidc_models').set({ payload: sql`jsonb_set(payload, '{accountId}', to_jsonb(${bob}::text))` }).where('id', '=', 'grant-alice').execute());
    } finally {
      await asOwner((trx) => sql`revoke insert, update, delete on users, user_sessions, oidc_models from jobswipe_user`.execute(trx));
      await asOwner((trx) => sql`grant update (name, updated_at) on users to jobswipe_user`.execute(trx));
      await asOwner((trx) => sql`grant update (ended_at, end_reason) on user_sessions to jobswipe_user`.execute(trx));
    }
    // Bob's rows are all still there, unchanged.
    const bobs = await db.selectFrom('user_sessions').select('user_id').where('user_id', '=', bob).execute();
    expect(bobs).toHaveLength(1);
    expect((await createUserQueries(db).findById(bob))?.email).toBe('bob@example.com');
    expect(await db.selectFrom('oidc_models').select('id').where('account_id', '=', bob).orderBy('id').execute()).toEqual([{ id: 'grant-bob' }, { id: 'jti-bob' }]);
  });

  it('the user role without a user id sees no row; withUser refuses an id that is not a uuid', async () => {
    for (const setting of [undefined, '']) {
      const counts = await db.transaction().execute(async (trx) => {
        await sql`set local role jobswipe_user`.execute(trx);
        if (setting !== undefined) await sql`select set_config('jobswipe.user_id', ${setting}, true)`.execute(trx);
        return Promise.all(USER_TABLES.map((table) => countAll(trx, table)));
      });
      expect(counts, `jobswipe.user_id = ${String(setting)}`).toEqual([0, 0, 0]);
    }
    for (const id of ['', 'not-a-uuid', `${alice}' or true --`, `${alice},${bob}`]) {
      await expect(withUser(db, id, (trx) => countAll(trx, 'users'))).rejects.toBeInstanceOf(InvalidUserIdError);
    }
  });

  it('the user role cannot read signing keys, key-store settings or rate-limit counters', async () => {
    for (const table of ['signing_keys', 'keystore_settings', 'rate_limits']) {
      await expect(withUser(db, alice, (trx) => sql`select count(*) from ${sql.table(table)}`.execute(trx)), table).rejects.toThrow(/permission denied/);
    }
    // The server itself reads them (the keystore holds the keys it signs with).
    expect(Number((await sql<{ n: string }>`select count(*) as n from signing_keys`.execute(db)).rows[0]?.n)).toBeGreaterThan(0);
  });

  it("the account page's reads (user, sessions, connected apps) run as the user", async () => {
    const users = createUserQueries(db);
    const service = createSessionService({ db, adapter: createOidcAdapter(db), registry: createSessionRegistry(db), sendLogout: async () => [] });
    expect((await users.findOwn(alice))?.email).toBe('alice@example.com');
    expect((await service.list(alice)).map((view) => view.uid)).toEqual(['session-alice']);
    expect(await service.connectedApps(alice)).toEqual([expect.objectContaining({ clientId: 'app-alice', clientName: "Alice's app" })]);
    // Take the user role's right to read each table away: the read behind it fails, so it ran as that role.
    const reads: Array<[string, () => Promise<unknown>]> = [
      ['users', () => users.findOwn(alice)],
      ['user_sessions', () => service.list(alice)],
      ['oidc_models', () => service.connectedApps(alice)],
    ];
    for (const [table, read] of reads) {
      await asOwner((trx) => sql`revoke select on ${sql.table(table)} from jobswipe_user`.execute(trx));
      try {
        await expect(read(), table).rejects.toThrow(/permission denied/);
      } finally {
        await asOwner((trx) => sql`grant select on ${sql.table(table)} to jobswipe_user`.execute(trx));
      }
    }
    // Ending a session for a user is a write as that user.
    const registry = createSessionRegistry(db);
    await registry.end('session-alice', 'signed out from account page', bob);
    expect((await registry.find('session-alice'))?.ended_at).toBeNull();
    await registry.end('session-alice', 'signed out from account page', alice);
    expect((await registry.find('session-alice'))?.ended_at).toBeInstanceOf(Date);
  });

  it('/account reads the signed-in user, their sessions and their grants as that user', async () => {
    const browser = new Browser();
    const start = await browser.follow(`${idp.issuer}/account`);
    const page = await browser.follow(formAction(start.body, idp.issuer), undefined, {
      form: { _csrf: hiddenField(start.body, '_csrf'), email: 'alice@example.com', password: 'a long and good passphrase' },
    });
    expect(page.url).toBe(`${idp.issuer}/account`);
    expect(page.body).toContain('alice@example.com');
    // Without the user role's right to read any one of the tables, the page cannot be made.
    for (const table of USER_TABLES) {
      await asOwner((trx) => sql`revoke select on ${sql.table(table)} from jobswipe_user`.execute(trx));
      try {
        expect((await browser.request(`${idp.issuer}/account`)).status, table).toBe(500);
      } finally {
        await asOwner((trx) => sql`grant select on ${sql.table(table)} to jobswipe_user`.execute(trx));
      }
    }
    expect((await browser.request(`${idp.issuer}/account`)).status).toBe(200);
  });
});
