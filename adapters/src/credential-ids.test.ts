import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateTo, migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, STORE_KINDS, type TestStore } from '../../test/support/stores.ts';
import { payloadFor } from '../test/adapter-contract.fixtures.ts';
import { CREDENTIAL_MODELS, storedIdOf } from './credential-ids.ts';
import { openDatabase, type Database } from './database.ts';
import { createOidcAdapter } from './oidc-adapter.ts';
import type { OidcTables } from './tables.ts';

/** The last migration before codes and tokens were stored hashed. */
const BEFORE_HASHING = '0012_account_token_purposes';

describe.each(STORE_KINDS)('the upgrade to hashed credential ids on the %s store', (kind) => {
  let store: TestStore | undefined;
  let database: Database<OidcTables> | undefined;
  const db = () => database!.db;
  // Values as oidc-provider issues them (nanoid's alphabet), and one with bytes that base64 turns into + and /.
  const values = new Map([...CREDENTIAL_MODELS].map((model) => [model, `${randomBytes(32).toString('base64url')}-${model}`]));
  values.set('RefreshToken', `~~~>>>??? ü ${randomBytes(8).toString('hex')}`);
  const untouched = { Session: `session-${randomBytes(8).toString('hex')}`, Grant: `grant-${randomBytes(8).toString('hex')}` };

  beforeAll(async () => {
    store = await createTestStore(kind);
    database = await openDatabase<OidcTables>(
      store.kind === 'postgres' ? { kind: 'postgres', url: store.url, poolMax: 2 } : { kind: 'embedded', dataDir: store.dataDir },
    );
    await migrateTo(db(), BEFORE_HASHING);
    // Rows as the adapter wrote them before: under the value, with the value as jti.
    for (const [model, id] of [...values, ...Object.entries(untouched)]) {
      await db()
        .insertInto('oidc_models')
        .values({ model, id, payload: JSON.stringify(payloadFor(model, id)), expires_at: sql<Date>`now() + interval '1 hour'`, consumed_at: null })
        .execute();
    }
    await migrateToLatest(db());
  });

  afterAll(async () => {
    try {
      await database?.close();
    } finally {
      await store?.drop();
    }
  });

  it('rehashes the rows of credential models as the adapter does, and drops the value from the payload', async () => {
    const rows = await db().selectFrom('oidc_models').select(['model', 'id', sql<string>`payload::text`.as('payload')]).execute();
    for (const [model, value] of values) {
      const row = rows.find((candidate) => candidate.model === model);
      expect(row?.id, model).toBe(storedIdOf(model, value));
      expect(row?.payload, model).not.toContain(JSON.stringify(value));
    }
  });

  it('leaves sessions and grants as they were', async () => {
    for (const [model, id] of Object.entries(untouched)) {
      const row = await db().selectFrom('oidc_models').select(['id', 'payload']).where('model', '=', model).executeTakeFirst();
      expect(row?.id).toBe(id);
      expect(row?.payload).toStrictEqual(payloadFor(model, id));
    }
  });

  it('logs nobody out: every code and token issued before is found by its value, payload and all', async () => {
    const Adapter = createOidcAdapter(db());
    for (const [model, value] of values) expect(await new Adapter(model).find(value), model).toStrictEqual(payloadFor(model, value));
  });
});
