import { setTimeout as sleep } from 'node:timers/promises';
import { sql, type CompiledQuery } from 'kysely';
import type { Adapter, AdapterPayload } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, STORE_KINDS, type TestStore } from '../../test/support/stores.ts';
import { describeAdapterContract } from '../test/adapter-contract.ts';
import { newId, payloadFor } from '../test/adapter-contract.fixtures.ts';
import { openDatabase, type Database, type StoreOptions } from './database.ts';
import { CREDENTIAL_MODELS, storedIdOf } from './credential-ids.ts';
import { AlreadyConsumedError, createOidcAdapter, sweepExpired } from './oidc-adapter.ts';
import type { OidcTables } from './tables.ts';

/** Every model name oidc-provider v9 asks its adapter for. */
const MODELS = [
  'Session',
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'ClientCredentials',
  'Client',
  'InitialAccessToken',
  'RegistrationAccessToken',
  'Interaction',
  'ReplayDetection',
  'PushedAuthorizationRequest',
  'Grant',
  'BackchannelAuthenticationRequest',
] as const;
type ModelName = (typeof MODELS)[number];


/** Time for a row upserted with expiresIn = 1 to be past its expiry by the database clock. */
const PAST_ONE_SECOND_EXPIRY_MS = 1_300;



function storeOptions(store: TestStore): StoreOptions {
  return store.kind === 'postgres'
    ? { kind: 'postgres', url: store.url, poolMax: 10 }
    : { kind: 'embedded', dataDir: store.dataDir };
}

describe.each(STORE_KINDS)('oidc adapter on the %s store', (kind) => {
  let store: TestStore | undefined;
  let database: Database<OidcTables> | undefined;
  let OidcAdapter: new (name: string) => Adapter;

  const db = () => {
    if (!database) throw new Error('database not open');
    return database.db;
  };
  const adapter = (model: ModelName): Adapter => new OidcAdapter(model);

  /** Each id, and the hash a credential model stores it under, mapped back to the id. */
  const asStored = (ids: string[]) => new Map(ids.flatMap((id) => [[id, id], [storedIdOf('RefreshToken', id), id]]));

  /** The physical rows, expired or not, bypassing the adapter's expiry filter; `id` is the id the adapter was given. */
  async function storedRows(ids: string[]) {
    if (ids.length === 0) return [];
    const given = asStored(ids);
    const rows = await db()
      .selectFrom('oidc_models')
      .select(['model', 'id', 'expires_at', 'consumed_at', 'grant_id', 'uid', 'user_code'])
      .where('id', 'in', [...given.keys()])
      .execute();
    return rows.map((row) => ({ ...row, id: given.get(row.id) ?? row.id })).sort((a, b) => a.id.localeCompare(b.id));
  }

  beforeAll(async () => {
    store = await createTestStore(kind);
    database = await openDatabase<OidcTables>(storeOptions(store));
    expect(database.kind).toBe(kind);
    await migrateToLatest(database.db);
    OidcAdapter = createOidcAdapter(database.db);
  });

  afterAll(async () => {
    try {
      await database?.close();
    } finally {
      await store?.drop();
    }
  });

  describeAdapterContract('adapter contract', {
    models: MODELS,
    adapter: (model) => new OidcAdapter(model),
    storage: {
      async afterReplace(model, id) {
        const rows = await storedRows([id]);
        expect(rows).toHaveLength(1);
        expect(rows[0]?.model).toBe(model);
        await expectCredentialHidden(model, id);
      },
      async afterDestroy(_model, id) {
        expect(await storedRows([id])).toHaveLength(0);
      },
      async afterConsumeUnknown(_model, id) {
        expect(await storedRows([id])).toHaveLength(0);
      },
      async afterRevoke({ revoked, kept }) {
        const remaining = await storedRows([...revoked, ...kept]);
        expect(remaining.map((row) => row.id).sort()).toStrictEqual([...kept].sort());
      },
      async afterNoExpiryUpserts(_model, ids) {
        const rows = await storedRows(ids);
        expect(rows).toHaveLength(ids.length);
        for (const row of rows) expect(row.expires_at, row.id).toBeNull();
      },
      async afterExpiredUpsert(_model, id) {
        // Kept, as expired by the database clock, until sweepExpired.
        const [row] = await storedRows([id]);
        expect(row?.expires_at).toBeInstanceOf(Date);
      },
    },
  });

  /** A credential model's row holds neither its value as id nor in the payload. */
  async function expectCredentialHidden(model: string, id: string) {
    const rows = await db()
      .selectFrom('oidc_models')
      .select(['id', sql<string>`payload::text`.as('payload')])
      .where('model', '=', model)
      .where((eb) => eb.or([eb('id', '=', id), eb('id', '=', storedIdOf(model, id))]))
      .execute();
    expect(rows).toHaveLength(1);
    if (!CREDENTIAL_MODELS.has(model)) return;
    expect(rows[0]?.id).toBe(storedIdOf(model, id));
    expect(rows[0]?.id).not.toBe(id);
    // The fixture's grantId embeds the id; the value itself, as a JSON string, must not be there.
    expect(rows[0]?.payload).not.toContain(JSON.stringify(id));
  }

  describe('consume', () => {
    it.each(['AuthorizationCode', 'RefreshToken'] as const)(
      'of 20 concurrent consumes of one %s exactly one wins',
      async (model) => {
        const id = newId(`race-${model}`);
        const grantId = newId('race-grant');
        await adapter(model).upsert(id, payloadFor(model, id, { grantId }), 600);

        // Separate adapter instances, as separate requests would have.
        const results = await Promise.allSettled(Array.from({ length: 20 }, () => adapter(model).consume(id)));

        const fulfilled = results.filter((result) => result.status === 'fulfilled');
        const rejected = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected');
        expect(fulfilled).toHaveLength(1);
        expect(rejected).toHaveLength(19);
        for (const { reason } of rejected) {
          expect(reason).toBeInstanceOf(AlreadyConsumedError);
          expect((reason as AlreadyConsumedError).grantId).toBe(grantId);
        }
        expect(typeof (await adapter(model).find(id))?.consumed).toBe('number');
      },
    );
  });

  describe('rotate (consume a refresh token and save its successor in one statement)', () => {
    type Rotating = Adapter & { rotate(used: string, id: string, payload: AdapterPayload, expiresIn: number): Promise<void> };
    const rotating = () => adapter('RefreshToken') as Rotating;

    it('of 20 concurrent rotations of one token exactly one wins, and only its successor is stored', async () => {
      const used = newId('rotate-used');
      const grantId = newId('rotate-grant');
      await adapter('RefreshToken').upsert(used, payloadFor('RefreshToken', used, { grantId }), 600);
      const successors = Array.from({ length: 20 }, (_, i) => newId(`rotate-next-${i}`));

      const results = await Promise.allSettled(
        successors.map((next) => rotating().rotate(used, next, payloadFor('RefreshToken', next, { grantId }), 600)),
      );

      const won = results.flatMap((result, i) => (result.status === 'fulfilled' ? [successors[i]!] : []));
      expect(won).toHaveLength(1);
      for (const result of results) {
        if (result.status === 'rejected') {
          expect(result.reason).toBeInstanceOf(AlreadyConsumedError);
          expect((result.reason as AlreadyConsumedError).grantId).toBe(grantId);
          expect((result.reason as AlreadyConsumedError).gone).toBe(false);
        }
      }
      expect(typeof (await adapter('RefreshToken').find(used))?.consumed).toBe('number');
      const stored = await storedRows(successors);
      expect(stored.map((row) => row.id)).toEqual(won);
      expect(stored[0]).toMatchObject({ grant_id: grantId, consumed_at: null });
      expect(stored[0]?.expires_at).toBeInstanceOf(Date);
      expect(await adapter('RefreshToken').find(won[0]!)).toMatchObject({ grantId });
    });

    it('stores nothing when the token is gone, and says so', async () => {
      const next = newId('rotate-orphan');
      const error = await rotating().rotate(newId('rotate-missing'), next, payloadFor('RefreshToken', next), 600).catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(AlreadyConsumedError);
      expect((error as AlreadyConsumedError).gone).toBe(true);
      expect(await storedRows([next])).toEqual([]);
    });

    it('leaves the token unused when the successor cannot be stored (both or neither)', async () => {
      const used = newId('rotate-atomic');
      await adapter('RefreshToken').upsert(used, payloadFor('RefreshToken', used), 600);
      const next = newId('rotate-refused');
      // The successor's insert fails inside the statement: a check no successor can pass, for this test only.
      await sql`alter table oidc_models add constraint rotate_test_refuses check (payload ->> 'refuse' is null) not valid`.execute(db());
      try {
        await expect(rotating().rotate(used, next, { ...payloadFor('RefreshToken', next), refuse: true }, 600)).rejects.toThrow();
      } finally {
        await sql`alter table oidc_models drop constraint rotate_test_refuses`.execute(db());
      }
      expect((await adapter('RefreshToken').find(used))?.consumed).toBeUndefined();
      expect(await storedRows([next])).toEqual([]);
      // And the token can still be rotated.
      await rotating().rotate(used, next, payloadFor('RefreshToken', next), 600);
      expect(typeof (await adapter('RefreshToken').find(used))?.consumed).toBe('number');
    });
  });

  describe('revokeByGrantId', () => {
    // The grant_id column is generated from the payload, so it follows the latest upsert.
    it('follows a grantId changed by a later upsert', async () => {
      const id = newId('at');
      const [before, after] = [newId('grant'), newId('grant')];
      await adapter('AccessToken').upsert(id, payloadFor('AccessToken', id, { grantId: before }), 600);
      await adapter('AccessToken').upsert(id, payloadFor('AccessToken', id, { grantId: after }), 600);

      await adapter('AccessToken').revokeByGrantId(before);
      expect((await adapter('AccessToken').find(id))?.grantId).toBe(after);
      await adapter('AccessToken').revokeByGrantId(after);
      expect(await adapter('AccessToken').find(id)).toBeUndefined();
    });
  });

  describe('a refresh token brings its grant along', () => {
    /** An adapter class over this database that counts the lookups it runs (compiled statements). */
    function counting() {
      let statements = 0;
      const target = db();
      const proxied = new Proxy(target, {
        get(_, property) {
          if (property === 'executeQuery') {
            return (query: CompiledQuery) => {
              statements += 1;
              return target.executeQuery(query);
            };
          }
          const value: unknown = Reflect.get(target, property, target);
          return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
        },
      });
      return { Counted: createOidcAdapter(proxied), statements: () => statements };
    }

    async function tokenAndGrant() {
      const grantId = newId('grant');
      const tokenId = newId('rt');
      await adapter('Grant').upsert(grantId, payloadFor('Grant', grantId, { accountId: 'account-1' }), 600);
      await adapter('RefreshToken').upsert(tokenId, payloadFor('RefreshToken', tokenId, { grantId }), 600);
      return { grantId, tokenId };
    }

    it('answers the grant lookup that follows from the same statement, once', async () => {
      const { grantId, tokenId } = await tokenAndGrant();
      const { Counted, statements } = counting();
      const token = await new Counted('RefreshToken').find(tokenId);
      expect(token).toMatchObject({ jti: tokenId, grantId });
      expect(statements()).toBe(1);
      const grant = await new Counted('Grant').find(grantId);
      expect(statements()).toBe(1);
      expect(grant).toEqual(await adapter('Grant').find(grantId));
      expect(grant).toMatchObject({ accountId: 'account-1' });
      // Taken once: the next lookup reads the row.
      expect(await new Counted('Grant').find(grantId)).toEqual(grant);
      expect(statements()).toBe(2);
    });

    it('forgets a grant this process destroys or revokes after the token was read', async () => {
      const { grantId, tokenId } = await tokenAndGrant();
      const { Counted } = counting();
      await new Counted('RefreshToken').find(tokenId);
      await new Counted('Grant').destroy(grantId);
      expect(await new Counted('Grant').find(grantId)).toBeUndefined();

      const other = await tokenAndGrant();
      const counted = counting();
      await new counted.Counted('RefreshToken').find(other.tokenId);
      const before = counted.statements();
      await new counted.Counted('AccessToken').revokeByGrantId(other.grantId);
      await new counted.Counted('Grant').find(other.grantId);
      expect(counted.statements()).toBe(before + 1);
    });

    it('reads the grant again once the token was read more than a second before', async () => {
      const { grantId, tokenId } = await tokenAndGrant();
      const { Counted, statements } = counting();
      await new Counted('RefreshToken').find(tokenId);
      await sleep(1_100);
      await new Counted('Grant').find(grantId);
      expect(statements()).toBe(2);
    });

    it('finds a token whose grant is gone, and nothing for an unknown token', async () => {
      const { grantId, tokenId } = await tokenAndGrant();
      await adapter('Grant').destroy(grantId);
      const { Counted } = counting();
      expect(await new Counted('RefreshToken').find(tokenId)).toMatchObject({ jti: tokenId, grantId });
      expect(await new Counted('Grant').find(grantId)).toBeUndefined();
      expect(await new Counted('RefreshToken').find(newId('rt'))).toBeUndefined();
    });
  });

  describe('findByUid', () => {
    // The uid column is generated from the payload, so it follows the latest upsert.
    it('findByUid follows a uid changed by a later upsert, and looks in its own model only', async () => {
      const id = newId('sess');
      await adapter('Session').upsert(id, payloadFor('Session', id, { uid: 'old-uid-' + id }), 600);
      await adapter('Session').upsert(id, payloadFor('Session', id, { uid: 'new-uid-' + id }), 600);
      expect(await adapter('Session').findByUid('old-uid-' + id)).toBeUndefined();
      expect((await adapter('Session').findByUid('new-uid-' + id))?.jti).toBe(id);

      const interaction = newId('int');
      await adapter('Interaction').upsert(interaction, payloadFor('Interaction', interaction, { uid: 'int-uid-' + id }), 600);
      expect(await adapter('Session').findByUid('int-uid-' + id)).toBeUndefined();
      expect((await adapter('Interaction').findByUid('int-uid-' + id))?.jti).toBe(interaction);
    });
  });

  // Last in this block: it sweeps, and counts what it sweeps.
  describe('expiry by the database clock, and sweepExpired', () => {
    const short = {
      access: newId('at-short'),
      session: newId('sess-short'),
      device: newId('dc-short'),
      code: newId('ac-short'),
      replay: newId('rd-short'),
      becomesShort: newId('grant-becomes-short'),
    };
    const kept = {
      long: newId('at-long'),
      zero: newId('client-zero'),
      missing: newId('iat-missing'),
      becomesPermanent: newId('int-becomes-permanent'),
    };
    const immediately: Record<string, AdapterPayload | undefined | void> = {};
    let dbOffsets: { id: string; seconds: number | null }[] = [];

    beforeAll(async () => {
      // Leave no earlier expired row for the sweep count below.
      await sweepExpired(db());

      await adapter('AccessToken').upsert(short.access, payloadFor('AccessToken', short.access), 1);
      await adapter('Session').upsert(short.session, payloadFor('Session', short.session), 1);
      await adapter('DeviceCode').upsert(short.device, payloadFor('DeviceCode', short.device), 1);
      await adapter('AuthorizationCode').upsert(short.code, payloadFor('AuthorizationCode', short.code), 1);
      await adapter('AuthorizationCode').consume(short.code);
      await adapter('ReplayDetection').upsert(short.replay, payloadFor('ReplayDetection', short.replay), 1);
      await adapter('Grant').upsert(short.becomesShort, payloadFor('Grant', short.becomesShort), 0);
      await adapter('Grant').upsert(short.becomesShort, payloadFor('Grant', short.becomesShort), 1);

      await adapter('AccessToken').upsert(kept.long, payloadFor('AccessToken', kept.long), 3600);
      await adapter('Client').upsert(kept.zero, payloadFor('Client', kept.zero), 0);
      await adapter('InitialAccessToken').upsert(kept.missing, payloadFor('InitialAccessToken', kept.missing));
      await adapter('Interaction').upsert(kept.becomesPermanent, payloadFor('Interaction', kept.becomesPermanent), 1);
      await adapter('Interaction').upsert(kept.becomesPermanent, payloadFor('Interaction', kept.becomesPermanent), 0);

      immediately['access'] = await adapter('AccessToken').find(short.access);
      immediately['session'] = await adapter('Session').findByUid(`uid-of-${short.session}`);
      immediately['device'] = await adapter('DeviceCode').findByUserCode(`UC-${short.device}`);
      immediately['code'] = await adapter('AuthorizationCode').find(short.code);
      immediately['replay'] = await adapter('ReplayDetection').find(short.replay);
      immediately['becomesShort'] = await adapter('Grant').find(short.becomesShort);

      const given = asStored([...Object.values(short), ...Object.values(kept)]);
      const offsets = await db()
        .selectFrom('oidc_models')
        .select(['id', sql<number | null>`extract(epoch from expires_at - now())::float8`.as('seconds')])
        .where('id', 'in', [...given.keys()])
        .execute();
      dbOffsets = offsets.map((row) => ({ id: given.get(row.id) ?? row.id, seconds: row.seconds === null ? null : Number(row.seconds) }));

      await sleep(PAST_ONE_SECOND_EXPIRY_MS);
    });

    it('rows with expiresIn = 1 are returned at once, expiring 1 s after now() on the database', () => {
      expect(immediately['access']?.jti).toBe(short.access);
      expect(immediately['session']?.jti).toBe(short.session);
      expect(immediately['device']?.jti).toBe(short.device);
      expect(immediately['code']?.consumed).toEqual(expect.any(Number));
      expect(immediately['replay']?.jti).toBe(short.replay);
      expect(immediately['becomesShort']?.jti).toBe(short.becomesShort);

      const byId = new Map(dbOffsets.map((row) => [row.id, row.seconds]));
      for (const id of Object.values(short)) {
        const seconds = byId.get(id);
        expect(seconds, id).toBeGreaterThan(0);
        expect(seconds, id).toBeLessThanOrEqual(1);
      }
      expect(byId.get(kept.long)).toBeGreaterThan(3590);
      expect(byId.get(kept.zero)).toBeNull();
      expect(byId.get(kept.missing)).toBeNull();
      expect(byId.get(kept.becomesPermanent)).toBeNull();
    });

    it('once expired, find, findByUid and findByUserCode no longer return them', async () => {
      expect(await adapter('AccessToken').find(short.access)).toBeUndefined();
      expect(await adapter('Session').find(short.session)).toBeUndefined();
      expect(await adapter('Session').findByUid(`uid-of-${short.session}`)).toBeUndefined();
      expect(await adapter('DeviceCode').find(short.device)).toBeUndefined();
      expect(await adapter('DeviceCode').findByUserCode(`UC-${short.device}`)).toBeUndefined();
      expect(await adapter('AuthorizationCode').find(short.code)).toBeUndefined();
      expect(await adapter('ReplayDetection').find(short.replay)).toBeUndefined();
      expect(await adapter('Grant').find(short.becomesShort)).toBeUndefined();
    });

    it('rows with a long, zero or missing expiresIn are still returned', async () => {
      expect((await adapter('AccessToken').find(kept.long))?.jti).toBe(kept.long);
      expect((await adapter('Client').find(kept.zero))?.jti).toBe(kept.zero);
      expect((await adapter('InitialAccessToken').find(kept.missing))?.jti).toBe(kept.missing);
      expect((await adapter('Interaction').find(kept.becomesPermanent))?.jti).toBe(kept.becomesPermanent);
    });

    it('sweepExpired deletes the expired rows, keeps the others, and returns the count removed', async () => {
      // Expired rows stay in the table until swept.
      expect(await storedRows(Object.values(short))).toHaveLength(Object.values(short).length);

      // A batch smaller than the work makes it loop: 2 + 2 + 2.
      const removed = await sweepExpired(db(), 2);
      expect(removed).toBe(Object.values(short).length);

      expect(await storedRows(Object.values(short))).toHaveLength(0);
      const remaining = await storedRows(Object.values(kept));
      expect(remaining.map((row) => row.id).sort()).toStrictEqual(Object.values(kept).sort());

      expect(await sweepExpired(db())).toBe(0);
    });
  });
});
