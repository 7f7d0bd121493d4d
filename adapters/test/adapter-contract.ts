import { errors, type Adapter } from 'oidc-provider';
import { describe, expect, it } from 'vitest';
import { epochNow, GRANTABLE, newId, payloadFor } from './adapter-contract.fixtures.ts';
import { AlreadyConsumedError } from '../src/oidc-adapter.ts';

/**
 * The oidc-provider storage contract, as test cases shared by every adapter (database and Redis).
 * Test support (not shipped in src): the suites that call it are the adapters' own `*.test.ts` files, with
 * the checks that only hold for one store.
 */

/**
 * Store-level checks the shared cases run at fixed points, looking past the adapter at what the
 * store holds (rows, keys, TTLs). Each is optional and should assert with `expect`.
 */
export interface AdapterStorageChecks {
  /** After `id` was upserted twice with expiresIn 3600, the second replacing the first. */
  afterReplace?(model: string, id: string): Promise<void>;
  /** After `id` was upserted and then destroyed. */
  afterDestroy?(model: string, id: string): Promise<void>;
  /** After consume of an `id` that was never stored. */
  afterConsumeUnknown?(model: string, id: string): Promise<void>;
  /**
   * After `model`'s revokeByGrantId(grantId): `revoked` were that grant's objects of `model`,
   * `kept` the case's other objects (of `model` and of other models) that must remain.
   */
  afterRevoke?(revocation: { model: string; grantId: string; revoked: string[]; kept: string[] }): Promise<void>;
  /** After each of `ids` was upserted with expiresIn 0, without expiresIn, or with 1 and then 0. */
  afterNoExpiryUpserts?(model: string, ids: string[]): Promise<void>;
  /** After a first upsert of `id` with a negative expiresIn. */
  afterExpiredUpsert?(model: string, id: string, expiresIn: number): Promise<void>;
}

export interface AdapterContractSetup {
  /** The models the adapter must hold; every per-model case runs for each of them. */
  readonly models: readonly string[];
  /** A new adapter for the model, as oidc-provider makes them; called only inside tests (after beforeAll). */
  adapter(model: string): Adapter;
  readonly storage?: AdapterStorageChecks;
}

/** Models the shared cases use by name, for their uid, userCode or missing grantId. */
const NAMED_MODELS = ['Session', 'Interaction', 'DeviceCode', 'BackchannelAuthenticationRequest'];

/** The first three models holding a grantId: the one revoked, a sibling revoked later, a third left alone. */
function grantableTriple(models: readonly string[]): [string, string, string] {
  const [model, sibling, third] = models.filter((name) => GRANTABLE.has(name));
  if (!model || !sibling || !third) throw new Error(`the adapter contract needs three grantable models, got ${models.join(', ')}`);
  return [model, sibling, third];
}

/** Registers the shared adapter contract cases under `describe(label)`. */
export function describeAdapterContract(label: string, setup: AdapterContractSetup): void {
  const models = [...setup.models];
  const missing = NAMED_MODELS.filter((name) => !models.includes(name));
  if (missing.length > 0) throw new Error(`the adapter contract needs the models ${missing.join(', ')}`);
  const [grantModel, grantSibling, grantThird] = grantableTriple(models);
  const adapter = (model: string) => setup.adapter(model);
  const storage = setup.storage ?? {};

  describe(label, () => {
    describe.each(models)('model %s', (model) => {
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

        await storage.afterReplace?.(model, id);
      });

      it('find of an unknown id is undefined', async () => {
        expect(await adapter(model).find(newId('unknown'))).toBeUndefined();
      });

      it('destroy removes it; destroying an unknown id is harmless', async () => {
        const id = newId(model);
        const payload = payloadFor(model, id);
        await adapter(model).upsert(id, payload, 3600);
        expect(await adapter(model).find(id)).toStrictEqual(payload);

        await adapter(model).destroy(id);
        expect(await adapter(model).find(id)).toBeUndefined();
        await storage.afterDestroy?.(model, id);

        await expect(adapter(model).destroy(id)).resolves.toBeUndefined();
      });

      it('is isolated from other models holding the same id', async () => {
        const other = models[(models.indexOf(model) + 1) % models.length] ?? 'Session';
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

        // Consuming one leaves the other unconsumed.
        await adapter(model).consume(id);
        expect(await adapter(model).find(id)).toHaveProperty('consumed');
        expect(await adapter(other).find(id)).not.toHaveProperty('consumed');

        await adapter(model).destroy(id);
        expect(await adapter(model).find(id)).toBeUndefined();
        expect(await adapter(other).find(id)).toStrictEqual(theirs);

        // The other can still be consumed itself.
        await expect(adapter(other).consume(id)).resolves.toBeUndefined();
      });

      it('consume sets a numeric consumed time; a second consume throws AlreadyConsumedError with the grantId', async () => {
        const id = newId(model);
        const grantId = newId('grant');
        const payload = payloadFor(model, id, { grantId });
        await adapter(model).upsert(id, payload, 600);
        expect(await adapter(model).find(id)).not.toHaveProperty('consumed');

        const before = epochNow();
        await expect(adapter(model).consume(id)).resolves.toBeUndefined();
        const after = epochNow();

        // The consumed time in epoch seconds, beside the payload as it was.
        const { consumed, ...rest } = (await adapter(model).find(id)) ?? {};
        expect(rest).toStrictEqual(payload);
        expect(typeof consumed).toBe('number');
        expect(Number.isInteger(consumed)).toBe(true);
        // The store's clock, on this same machine.
        expect(consumed).toBeGreaterThanOrEqual(before - 2);
        expect(consumed).toBeLessThanOrEqual(after + 2);

        const error: unknown = await adapter(model).consume(id).then(
          () => undefined,
          (rejection: unknown) => rejection,
        );
        expect(error).toBeInstanceOf(AlreadyConsumedError);
        expect(error).toBeInstanceOf(errors.InvalidGrant);
        expect((error as AlreadyConsumedError).grantId).toBe(grantId);
        expect((error as AlreadyConsumedError).error).toBe('invalid_grant');
        // The first consumed time stays.
        expect((await adapter(model).find(id))?.consumed).toBe(consumed);
      });

      it('consume of an unknown id (one deleted after it was found, say) throws AlreadyConsumedError and creates nothing', async () => {
        const id = newId('nothing');
        const error: unknown = await adapter(model).consume(id).then(
          () => undefined,
          (rejection: unknown) => rejection,
        );
        expect(error).toBeInstanceOf(AlreadyConsumedError);
        expect(error).toMatchObject({ error: 'invalid_grant', grantId: undefined, gone: true });
        expect(await adapter(model).find(id)).toBeUndefined();
        await storage.afterConsumeUnknown?.(model, id);
      });

      it('expiresIn 0 or none means no expiry, also replacing an upsert that had one', async () => {
        const [zero, none, becomesPermanent] = [newId(`${model}-zero`), newId(`${model}-none`), newId(`${model}-permanent`)];
        await adapter(model).upsert(zero, payloadFor(model, zero), 0);
        await adapter(model).upsert(none, payloadFor(model, none));
        await adapter(model).upsert(becomesPermanent, payloadFor(model, becomesPermanent), 1);
        await adapter(model).upsert(becomesPermanent, payloadFor(model, becomesPermanent), 0);

        for (const id of [zero, none, becomesPermanent]) expect(await adapter(model).find(id), id).toBeDefined();
        await storage.afterNoExpiryUpserts?.(model, [zero, none, becomesPermanent]);
      });
    });

    it('AlreadyConsumedError has an undefined grantId when the payload has none', async () => {
      const id = newId('bcauth');
      const payload = payloadFor('BackchannelAuthenticationRequest', id);
      delete payload.grantId;
      await adapter('BackchannelAuthenticationRequest').upsert(id, payload, 600);
      await adapter('BackchannelAuthenticationRequest').consume(id);
      const error: unknown = await adapter('BackchannelAuthenticationRequest').consume(id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AlreadyConsumedError);
      expect((error as AlreadyConsumedError).grantId).toBeUndefined();
    });

    describe('revokeByGrantId', () => {
      it(`deletes every ${grantModel} with that grantId and nothing else`, async () => {
        const grant = newId('grant');
        const otherGrant = newId('grant');
        const ids = {
          first: newId(grantModel),
          second: newId(grantModel),
          otherGrant: newId(grantModel),
          noGrant: newId(grantModel),
          sibling: newId(grantSibling),
          third: newId(grantThird),
        };
        await adapter(grantModel).upsert(ids.first, payloadFor(grantModel, ids.first, { grantId: grant }), 600);
        await adapter(grantModel).upsert(ids.second, payloadFor(grantModel, ids.second, { grantId: grant }), 0);
        await adapter(grantModel).upsert(
          ids.otherGrant,
          payloadFor(grantModel, ids.otherGrant, { grantId: otherGrant }),
          600,
        );
        const noGrant = payloadFor(grantModel, ids.noGrant);
        delete noGrant.grantId;
        await adapter(grantModel).upsert(ids.noGrant, noGrant, 600);
        await adapter(grantSibling).upsert(ids.sibling, payloadFor(grantSibling, ids.sibling, { grantId: grant }), 600);
        await adapter(grantThird).upsert(ids.third, payloadFor(grantThird, ids.third, { grantId: grant }), 600);
        // A consumed object of the grant goes too.
        await adapter(grantModel).consume(ids.second);

        await expect(adapter(grantModel).revokeByGrantId(grant)).resolves.toBeUndefined();

        expect(await adapter(grantModel).find(ids.first)).toBeUndefined();
        expect(await adapter(grantModel).find(ids.second)).toBeUndefined();
        expect((await adapter(grantModel).find(ids.otherGrant))?.grantId).toBe(otherGrant);
        expect(await adapter(grantModel).find(ids.noGrant)).toStrictEqual(noGrant);
        expect((await adapter(grantSibling).find(ids.sibling))?.grantId).toBe(grant);
        expect((await adapter(grantThird).find(ids.third))?.grantId).toBe(grant);
        await storage.afterRevoke?.({
          model: grantModel,
          grantId: grant,
          revoked: [ids.first, ids.second],
          kept: [ids.otherGrant, ids.noGrant, ids.sibling, ids.third],
        });

        await adapter(grantSibling).revokeByGrantId(grant);
        expect(await adapter(grantSibling).find(ids.sibling)).toBeUndefined();
        expect((await adapter(grantThird).find(ids.third))?.grantId).toBe(grant);
      });

      it('of an unknown grant removes nothing', async () => {
        const id = newId(grantModel);
        await adapter(grantModel).upsert(id, payloadFor(grantModel, id), 600);
        await expect(adapter(grantModel).revokeByGrantId(newId('no-such-grant'))).resolves.toBeUndefined();
        expect(await adapter(grantModel).find(id)).toBeDefined();
      });
    });

    describe('findByUid and findByUserCode', () => {
      it('findByUid finds the Session by its uid, and not once destroyed', async () => {
        const id = newId('sess');
        const payload = payloadFor('Session', id);
        await adapter('Session').upsert(id, payload, 600);

        expect(await adapter('Session').findByUid(`uid-of-${id}`)).toStrictEqual(payload);
        expect(await adapter('Session').findByUid(newId('uid'))).toBeUndefined();
        // Another model with the same uid is not a Session.
        expect(await adapter('Interaction').findByUid(`uid-of-${id}`)).toBeUndefined();

        await adapter('Session').destroy(id);
        expect(await adapter('Session').findByUid(`uid-of-${id}`)).toBeUndefined();
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

    it.each([-5, -0.5])(
      'a negative expiresIn (%s) is already expired: nothing is found, by id or uid, also when replacing',
      async (expiresIn) => {
        // oidc-provider saves with exp - now, e.g. Interaction/Session persist() or a late DeviceCode save.
        const id = newId('int');
        await adapter('Interaction').upsert(id, payloadFor('Interaction', id, { uid: 'late-' + id }), expiresIn);
        expect(await adapter('Interaction').find(id)).toBeUndefined();
        expect(await adapter('Interaction').findByUid('late-' + id)).toBeUndefined();
        await storage.afterExpiredUpsert?.('Interaction', id, expiresIn);

        const session = newId('sess');
        await adapter('Session').upsert(session, payloadFor('Session', session), 600);
        await adapter('Session').upsert(session, payloadFor('Session', session), expiresIn);
        expect(await adapter('Session').find(session)).toBeUndefined();
        expect(await adapter('Session').findByUid(`uid-of-${session}`)).toBeUndefined();
      },
    );
  });
}
