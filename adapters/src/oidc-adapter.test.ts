import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { errors, type Adapter, type AdapterPayload } from 'oidc-provider';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateToLatest } from '@jobswipe/migrations';
import { createTestStore, STORE_KINDS, type TestStore } from '../../test/support/stores.ts';
import { epochNow, newId, payloadFor } from './adapter-contract.fixtures.ts';
import { openDatabase, type Database, type StoreOptions } from './database.ts';
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

  /** The physical rows, expired or not, bypassing the adapter's expiry filter. */
  async function storedRows(ids: string[]) {
    if (ids.length === 0) return [];
    return db()
      .selectFrom('oidc_models')
      .select(['model', 'id', 'expires_at', 'consumed_at', 'grant_id', 'uid', 'user_code'])
      .where('id', 'in', ids)
      .orderBy('id')
      .execute();
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

  describe.each(MODELS)('model %s', (model) => {
    it('upsert then find returns the payload; a second upsert replaces it', async () => {
      const id = newId(model);
      const first = payloadFor(model, id, { nonce: 'first-only', scope: 'openid' });
      await adapter(model).upsert(id, first, 3600);
      expect(await adapter(model).find(id)).toStrictEqual(first);

      const second = payloadFor(model, id, { scope: 'openid profile', rotations: 2 });
      await adapter(model).upsert(id, second, 3600);
      const found = await adapter(model).find(id);
      expect(found).toStrictEqual(second);
      // Replaced, not merged.
      expect(found).not.toHaveProperty('nonce');

      const rows = await storedRows([id]);
      expect(rows).toHaveLength(1);
      expect(rows[0]?.model).toBe(model);
    });

    it('find of an unknown id is undefined', async () => {
      expect(await adapter(model).find(newId('unknown'))).toBeUndefined();
    });

    it('destroy removes the row; destroying an unknown id is harmless', async () => {
      const id = newId(model);
      const payload = payloadFor(model, id);
      await adapter(model).upsert(id, payload, 3600);
      expect(await adapter(model).find(id)).toStrictEqual(payload);

      await adapter(model).destroy(id);
      expect(await adapter(model).find(id)).toBeUndefined();
      expect(await storedRows([id])).toHaveLength(0);

      await expect(adapter(model).destroy(id)).resolves.toBeUndefined();
    });

    it('is isolated from other models holding the same id', async () => {
      const other: ModelName = MODELS[(MODELS.indexOf(model) + 1) % MODELS.length] ?? 'Session';
      const id = newId('shared');
      const mine = payloadFor(model, id, { scope: `mine ${model}` });
      const theirs = payloadFor(other, id, { scope: `theirs ${other}` });
      await adapter(model).upsert(id, mine, 3600);
      await adapter(other).upsert(id, theirs, 3600);

      expect(await adapter(model).find(id)).toStrictEqual(mine);
      expect(await adapter(other).find(id)).toStrictEqual(theirs);

      // Replacing one leaves the other as it was.
      const replaced = payloadFor(model, id, { scope: 'replaced' });
      await adapter(model).upsert(id, replaced, 3600);
      expect(await adapter(other).find(id)).toStrictEqual(theirs);

      await adapter(model).destroy(id);
      expect(await adapter(model).find(id)).toBeUndefined();
      expect(await adapter(other).find(id)).toStrictEqual(theirs);
    });
  });

  describe('consume', () => {
    it('marks the payload with a numeric consumed time in epoch seconds, keeping the rest', async () => {
      const id = newId('code');
      const payload = payloadFor('AuthorizationCode', id);
      await adapter('AuthorizationCode').upsert(id, payload, 600);
      expect(await adapter('AuthorizationCode').find(id)).not.toHaveProperty('consumed');

      const before = epochNow();
      await expect(adapter('AuthorizationCode').consume(id)).resolves.toBeUndefined();
      const after = epochNow();

      const found = await adapter('AuthorizationCode').find(id);
      const { consumed, ...rest } = found ?? {};
      expect(rest).toStrictEqual(payload);
      expect(typeof consumed).toBe('number');
      expect(Number.isInteger(consumed)).toBe(true);
      // The database clock, on this same machine.
      expect(consumed).toBeGreaterThanOrEqual(before - 2);
      expect(consumed).toBeLessThanOrEqual(after + 2);
    });

    it('a second consume throws AlreadyConsumedError carrying the grantId, and keeps the first time', async () => {
      const id = newId('refresh');
      const payload = payloadFor('RefreshToken', id, { grantId: 'grant-for-reuse' });
      await adapter('RefreshToken').upsert(id, payload, 600);
      await adapter('RefreshToken').consume(id);
      const firstConsumed = (await adapter('RefreshToken').find(id))?.consumed as unknown;

      const error = await adapter('RefreshToken').consume(id).then(
        () => undefined,
        (rejection: unknown) => rejection,
      );
      expect(error).toBeInstanceOf(AlreadyConsumedError);
      expect(error).toBeInstanceOf(errors.InvalidGrant);
      expect((error as AlreadyConsumedError).grantId).toBe('grant-for-reuse');
      expect((error as AlreadyConsumedError).error).toBe('invalid_grant');
      expect((await adapter('RefreshToken').find(id))?.consumed).toBe(firstConsumed);
    });

    it('AlreadyConsumedError has an undefined grantId when the row has none', async () => {
      const id = newId('bcauth');
      const payload = payloadFor('BackchannelAuthenticationRequest', id);
      delete payload.grantId;
      await adapter('BackchannelAuthenticationRequest').upsert(id, payload, 600);
      await adapter('BackchannelAuthenticationRequest').consume(id);
      const error: unknown = await adapter('BackchannelAuthenticationRequest').consume(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyConsumedError);
      expect((error as AlreadyConsumedError).grantId).toBeUndefined();
    });

    it('consume of an unknown id does not throw and creates nothing', async () => {
      const id = newId('nothing');
      await expect(adapter('AuthorizationCode').consume(id)).resolves.toBeUndefined();
      expect(await adapter('AuthorizationCode').find(id)).toBeUndefined();
      expect(await storedRows([id])).toHaveLength(0);
    });

    it('consumes only the named model', async () => {
      const id = newId('same');
      await adapter('AuthorizationCode').upsert(id, payloadFor('AuthorizationCode', id), 600);
      await adapter('DeviceCode').upsert(id, payloadFor('DeviceCode', id), 600);
      await adapter('AuthorizationCode').consume(id);
      expect(await adapter('AuthorizationCode').find(id)).toHaveProperty('consumed');
      expect(await adapter('DeviceCode').find(id)).not.toHaveProperty('consumed');
      await expect(adapter('DeviceCode').consume(id)).resolves.toBeUndefined();
    });

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

  describe('revokeByGrantId', () => {
    it('deletes every row of that model with that grantId and nothing else', async () => {
      const grant = newId('grant');
      const otherGrant = newId('grant');
      const ids = {
        access1: newId('at'),
        access2: newId('at'),
        accessOtherGrant: newId('at'),
        accessNoGrant: newId('at'),
        refreshSameGrant: newId('rt'),
        codeSameGrant: newId('ac'),
      };
      await adapter('AccessToken').upsert(ids.access1, payloadFor('AccessToken', ids.access1, { grantId: grant }), 600);
      await adapter('AccessToken').upsert(ids.access2, payloadFor('AccessToken', ids.access2, { grantId: grant }), 0);
      await adapter('AccessToken').upsert(
        ids.accessOtherGrant,
        payloadFor('AccessToken', ids.accessOtherGrant, { grantId: otherGrant }),
        600,
      );
      const noGrant = payloadFor('AccessToken', ids.accessNoGrant);
      delete noGrant.grantId;
      await adapter('AccessToken').upsert(ids.accessNoGrant, noGrant, 600);
      await adapter('RefreshToken').upsert(
        ids.refreshSameGrant,
        payloadFor('RefreshToken', ids.refreshSameGrant, { grantId: grant }),
        600,
      );
      await adapter('AuthorizationCode').upsert(
        ids.codeSameGrant,
        payloadFor('AuthorizationCode', ids.codeSameGrant, { grantId: grant }),
        600,
      );
      // A consumed row of the grant goes too.
      await adapter('AccessToken').consume(ids.access2);

      await expect(adapter('AccessToken').revokeByGrantId(grant)).resolves.toBeUndefined();

      expect(await adapter('AccessToken').find(ids.access1)).toBeUndefined();
      expect(await adapter('AccessToken').find(ids.access2)).toBeUndefined();
      expect((await adapter('AccessToken').find(ids.accessOtherGrant))?.grantId).toBe(otherGrant);
      expect(await adapter('AccessToken').find(ids.accessNoGrant)).toStrictEqual(noGrant);
      expect((await adapter('RefreshToken').find(ids.refreshSameGrant))?.grantId).toBe(grant);
      expect((await adapter('AuthorizationCode').find(ids.codeSameGrant))?.grantId).toBe(grant);

      const remaining = await storedRows(Object.values(ids));
      expect(remaining.map((row) => row.id).sort()).toStrictEqual(
        [ids.accessOtherGrant, ids.accessNoGrant, ids.refreshSameGrant, ids.codeSameGrant].sort(),
      );

      await adapter('RefreshToken').revokeByGrantId(grant);
      expect(await adapter('RefreshToken').find(ids.refreshSameGrant)).toBeUndefined();
      expect((await adapter('AuthorizationCode').find(ids.codeSameGrant))?.grantId).toBe(grant);
    });

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

    it('of an unknown grant removes nothing', async () => {
      const id = newId('at');
      await adapter('AccessToken').upsert(id, payloadFor('AccessToken', id), 600);
      await expect(adapter('AccessToken').revokeByGrantId(newId('no-such-grant'))).resolves.toBeUndefined();
      expect(await adapter('AccessToken').find(id)).toBeDefined();
    });
  });

  describe('findByUid and findByUserCode', () => {
    it('findByUid finds the Session by its uid, and not once destroyed', async () => {
      const id = newId('sess');
      const payload = payloadFor('Session', id);
      await adapter('Session').upsert(id, payload, 600);

      expect(await adapter('Session').findByUid(`uid-of-${id}`)).toStrictEqual(payload);
      expect(await adapter('Session').findByUid(newId('uid'))).toBeUndefined();

      await adapter('Session').destroy(id);
      expect(await adapter('Session').findByUid(`uid-of-${id}`)).toBeUndefined();
    });

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

    it('findByUserCode finds the DeviceCode by its userCode, and not once destroyed', async () => {
      const id = newId('dc');
      const payload = payloadFor('DeviceCode', id);
      await adapter('DeviceCode').upsert(id, payload, 600);

      expect(await adapter('DeviceCode').findByUserCode(`UC-${id}`)).toStrictEqual(payload);
      expect(await adapter('DeviceCode').findByUserCode(newId('UC'))).toBeUndefined();
      // Another model with the same userCode is not a DeviceCode.
      expect(await adapter('BackchannelAuthenticationRequest').findByUserCode(`UC-${id}`)).toBeUndefined();

      await adapter('DeviceCode').consume(id);
      expect((await adapter('DeviceCode').findByUserCode(`UC-${id}`))?.consumed).toEqual(expect.any(Number));

      await adapter('DeviceCode').destroy(id);
      expect(await adapter('DeviceCode').findByUserCode(`UC-${id}`)).toBeUndefined();
    });
  });

  describe('expiresIn without a positive value', () => {
    it('0 and undefined mean no expiry', async () => {
      const zero = newId('client');
      const missing = newId('iat');
      await adapter('Client').upsert(zero, payloadFor('Client', zero), 0);
      await adapter('InitialAccessToken').upsert(missing, payloadFor('InitialAccessToken', missing));
      const rows = await storedRows([zero, missing]);
      expect(rows).toHaveLength(2);
      for (const row of rows) expect(row.expires_at).toBeNull();
      expect(await adapter('Client').find(zero)).toBeDefined();
      expect(await adapter('InitialAccessToken').find(missing)).toBeDefined();
    });

    it('a negative expiresIn (an object already past its expiry) is stored as expired', async () => {
      // oidc-provider saves with exp - now, e.g. Interaction/Session persist() or a late DeviceCode save.
      const id = newId('int');
      await adapter('Interaction').upsert(id, payloadFor('Interaction', id, { uid: 'late-' + id }), -5);
      expect(await adapter('Interaction').find(id)).toBeUndefined();
      expect(await adapter('Interaction').findByUid('late-' + id)).toBeUndefined();
      const [row] = await storedRows([id]);
      expect(row?.expires_at).toBeInstanceOf(Date);
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

      const offsets = await db()
        .selectFrom('oidc_models')
        .select(['id', sql<number | null>`extract(epoch from expires_at - now())::float8`.as('seconds')])
        .where('id', 'in', [...Object.values(short), ...Object.values(kept)])
        .execute();
      dbOffsets = offsets.map((row) => ({ id: row.id, seconds: row.seconds === null ? null : Number(row.seconds) }));

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
