import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withUser } from '@jobswipe/adapters';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { STORE_KINDS } from '../../../test/support/stores.ts';
import { IdempotencyKeyReused, PlanRejected, UnknownUser, type PlanService } from '../../src/plans/service.ts';
import type { Tables } from '../../src/store.ts';

/*
 * The plans library (idp/src/plans) over the migrated schema (0017_plans_and_usage.sql), on both
 * stores, through the running server's own graph: its clock is the one these tests move.
 */

const PASSWORD = 'a long and good passphrase';

describe.each(STORE_KINDS)('plans and usage library (%s)', (kind) => {
  let idp: TestServer;
  let db: Kysely<Tables>;
  let plans: PlanService;
  let clock = new Date('2031-01-15T12:00:00Z');
  let alice: string;
  let bob: string;
  let carol: string;

  const auditEvents = async (type: string) =>
    db.selectFrom('audit_events').select(['user_id', 'client_id', 'details']).where('event_type', '=', type).orderBy('id').execute();

  beforeAll(async () => {
    idp = await startTestServer(kind, {}, { start: { now: () => clock } });
    db = idp.server.database.db;
    plans = idp.server.libraries.plans;
    alice = (await idp.createUser({ email: 'alice@example.com', password: PASSWORD })).id;
    bob = (await idp.createUser({ email: 'bob@example.com', password: PASSWORD })).id;
    carol = (await idp.createUser({ email: 'carol@example.com', password: PASSWORD })).id;
  }, 120_000);

  afterAll(async () => {
    await idp?.stop();
  });

  it('the migration seeds the free plan: 20 applications, 1 desktop device; a user without a subscription is on it', async () => {
    expect(await plans.list()).toEqual([{ id: 'free', name: 'Free', limits: { applications: 20 }, desktop_devices: 1, features: [] }]);
    expect(await plans.entitlementsOf(alice)).toEqual({ plan: 'free', entitlements: { limits: { applications: 20 }, desktop_devices: 1, features: [] } });
  });

  it('saves plans: created, then unchanged, then changed; each change audited as plan.saved', async () => {
    const pro = { id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] };
    expect((await plans.save(pro, { kind: 'administrator' })).change).toBe('created');
    expect((await plans.save(pro, { kind: 'administrator' })).change).toBe('unchanged');
    expect((await plans.save({ ...pro, limits: { applications: 600 } }, { kind: 'client', clientId: 'ops' })).change).toBe('changed');
    await plans.save(pro, { kind: 'administrator' });
    const saved = await auditEvents('plan.saved');
    expect(saved.map((event) => [event.details['plan'], event.details['change'], event.details['via'], event.client_id])).toEqual([
      ['pro', 'created', 'cli', null],
      ['pro', 'changed', 'admin_api', 'ops'],
      ['pro', 'changed', 'cli', null],
    ]);
    expect((await plans.find('pro'))?.limits).toEqual({ applications: 500 });
  });

  it('refuses a malformed plan, naming the field', async () => {
    await expect(plans.save({ id: 'Bad Id', name: 'x', desktop_devices: 1 }, { kind: 'administrator' })).rejects.toThrow(PlanRejected);
    await expect(plans.save({ id: 'neg', name: 'Neg', limits: { applications: -1 }, desktop_devices: 1 }, { kind: 'administrator' })).rejects.toThrow(/limits\.applications/);
    await expect(plans.save({ id: 'x', name: 'X', desktop_devices: 1, extra: true } as never, { kind: 'administrator' })).rejects.toThrow(PlanRejected);
    expect(await plans.find('neg')).toBeUndefined();
  });

  it('setPlan takes effect at once and is audited as plan.changed; an unknown plan or user is refused', async () => {
    expect(await plans.setPlan(bob, 'pro', { kind: 'administrator' })).toEqual({ before: 'free', after: 'pro', changed: true });
    expect((await plans.entitlementsOf(bob)).plan).toBe('pro');
    expect((await plans.planOf(bob)).desktop_devices).toBe(3);
    const changed = await auditEvents('plan.changed');
    expect(changed.at(-1)).toMatchObject({ user_id: bob, details: { from: 'free', to: 'pro', via: 'cli' } });
    await expect(plans.setPlan(bob, 'platinum', { kind: 'administrator' })).rejects.toThrow(/no plan "platinum"/);
    await expect(plans.setPlan('00000000-0000-4000-8000-000000000000', 'pro', { kind: 'administrator' })).rejects.toThrow(UnknownUser);
    await expect(plans.entitlementsOf('not-a-uuid')).rejects.toThrow(UnknownUser);
  });

  it('records usage up to the limit; the same key again answers the first answer and counts nothing', async () => {
    const request = { clientId: 'svc', userId: alice, meter: 'applications', quantity: 15, idempotencyKey: 'k-1' };
    const first = await plans.record(request);
    expect(first).toEqual({ outcome: 'recorded', usage: { meter: 'applications', used: 15, limit: 20, remaining: 5, period_end: '2031-02-01T00:00:00.000Z' } });
    expect(await plans.record(request)).toEqual({ outcome: 'repeated', usage: first.usage });
    // The same key from another client is another request.
    const over = await plans.record({ ...request, clientId: 'other', quantity: 6 });
    expect(over).toEqual({
      outcome: 'over_limit',
      usage: { meter: 'applications', used: 15, limit: 20, remaining: 0, period_end: '2031-02-01T00:00:00.000Z' },
      retryAfterSeconds: 16 * 86400 + 12 * 3600,
    });
    expect((await plans.record({ ...request, clientId: 'other', quantity: 5 })).outcome).toBe('recorded');
    // A retry of the first request when the counter is full still gets its first answer.
    expect(await plans.record(request)).toEqual({ outcome: 'repeated', usage: first.usage });
    expect((await plans.meterOf(alice, 'applications')).used).toBe(20);
  });

  it('a key used again for another meter, user or quantity is refused and counts nothing', async () => {
    await expect(plans.record({ clientId: 'svc', userId: alice, meter: 'applications', quantity: 1, idempotencyKey: 'k-1' })).rejects.toThrow(IdempotencyKeyReused);
    await expect(plans.record({ clientId: 'svc', userId: bob, meter: 'applications', quantity: 15, idempotencyKey: 'k-1' })).rejects.toThrow(IdempotencyKeyReused);
    expect((await plans.meterOf(bob, 'applications')).used).toBe(0);
  });

  it('a meter the plan does not name has limit 0: nothing fits', async () => {
    const result = await plans.record({ clientId: 'svc', userId: bob, meter: 'cover_letters', quantity: 1, idempotencyKey: 'cl-1' });
    expect(result).toMatchObject({ outcome: 'over_limit', usage: { meter: 'cover_letters', used: 0, limit: 0, remaining: 0 } });
  });

  it('an unknown user records nothing', async () => {
    await expect(plans.record({ clientId: 'svc', userId: '00000000-0000-4000-8000-000000000000', meter: 'applications', quantity: 1, idempotencyKey: 'u-1' })).rejects.toThrow(UnknownUser);
  });

  it('50 concurrent recordings with distinct keys against a limit of 10 record exactly 10', async () => {
    await plans.save({ id: 'ten', name: 'Ten', limits: { applications: 10 }, desktop_devices: 1 }, { kind: 'administrator' });
    await plans.setPlan(carol, 'ten', { kind: 'administrator' });
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, index) => plans.record({ clientId: 'svc', userId: carol, meter: 'applications', quantity: 1, idempotencyKey: `c-${index}` })),
    );
    const outcomes = results.map((result) => result.outcome);
    expect(outcomes.filter((outcome) => outcome === 'recorded')).toHaveLength(10);
    expect(outcomes.filter((outcome) => outcome === 'over_limit')).toHaveLength(40);
    expect(results.filter((result) => result.outcome === 'recorded').map((result) => result.usage.used).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect((await plans.meterOf(carol, 'applications')).used).toBe(10);
    const events = await db.selectFrom('usage_events').select(sql<number>`count(*)::int`.as('n')).where('user_id', '=', carol).executeTakeFirstOrThrow();
    expect(Number(events.n)).toBe(10);
  });

  it('20 concurrent duplicates of one key count once, and all answer the same body', async () => {
    await plans.setPlan(carol, 'pro', { kind: 'administrator' });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => plans.record({ clientId: 'svc', userId: carol, meter: 'applications', quantity: 3, idempotencyKey: 'dup' })),
    );
    expect(results.filter((result) => result.outcome === 'recorded')).toHaveLength(1);
    expect(results.filter((result) => result.outcome === 'repeated')).toHaveLength(19);
    expect(new Set(results.map((result) => JSON.stringify(result.usage))).size).toBe(1);
    expect((await plans.meterOf(carol, 'applications')).used).toBe(13);
  });

  it('the period rolls over at the start of the UTC month: a new counter, a new limit', async () => {
    clock = new Date('2031-01-31T23:59:59.000Z');
    const last = await plans.record({ clientId: 'svc', userId: alice, meter: 'applications', quantity: 1, idempotencyKey: 'jan-last' });
    expect(last).toMatchObject({ outcome: 'over_limit', retryAfterSeconds: 1, usage: { used: 20, period_end: '2031-02-01T00:00:00.000Z' } });
    clock = new Date('2031-02-01T00:00:00.000Z');
    const first = await plans.record({ clientId: 'svc', userId: alice, meter: 'applications', quantity: 1, idempotencyKey: 'jan-last' });
    expect(first).toEqual({ outcome: 'recorded', usage: { meter: 'applications', used: 1, limit: 20, remaining: 19, period_end: '2031-03-01T00:00:00.000Z' } });
    expect(await plans.usageOf(alice)).toEqual([
      { meter: 'applications', used: 1, limit: 20, remaining: 19, period_start: '2031-02-01T00:00:00.000Z', period_end: '2031-03-01T00:00:00.000Z' },
    ]);
    // A retry of a January request in February still gets its January answer.
    expect(await plans.record({ clientId: 'svc', userId: alice, meter: 'applications', quantity: 15, idempotencyKey: 'k-1' })).toMatchObject({
      outcome: 'repeated',
      usage: { used: 15, period_end: '2031-02-01T00:00:00.000Z' },
    });
  });

  it('usage is read as the user: row-level security shows a user only their own counters and events', async () => {
    const seen = await withUser(db, alice, async (trx) => ({
      counters: await trx.selectFrom('usage_counters').select('user_id').execute(),
      events: await trx.selectFrom('usage_events').select('user_id').execute(),
      subscriptions: await trx.selectFrom('subscriptions').select('user_id').execute(),
      plans: await trx.selectFrom('plans').select('id').execute(),
    }));
    expect(seen.counters.length).toBeGreaterThan(0);
    expect(new Set([...seen.counters, ...seen.events].map((row) => row.user_id))).toEqual(new Set([alice]));
    expect(seen.subscriptions).toEqual([]);
    expect(seen.plans.length).toBeGreaterThan(1);
    // The user role may read, never write, its usage.
    await expect(withUser(db, alice, (trx) => trx.updateTable('usage_counters').set({ used: 0 }).where('user_id', '=', alice).execute())).rejects.toThrow(/permission denied/);
    await expect(withUser(db, bob, (trx) => trx.insertInto('subscriptions').values({ user_id: bob, plan_id: 'pro' }).execute())).rejects.toThrow(/permission denied/);
  });

  it('the sweeper keeps events of this period and the one before; counters stay', async () => {
    clock = new Date('2031-04-02T00:00:00Z');
    const before = Number((await db.selectFrom('usage_events').select(sql<number>`count(*)::int`.as('n')).executeTakeFirstOrThrow()).n);
    // Keep March and April: January's and February's events go.
    const removed = await idp.server.queries.plans.sweepEvents(new Date('2031-03-01T00:00:00Z'));
    expect(removed).toBe(before);
    const counters = await db.selectFrom('usage_counters').select(['user_id', 'used']).where('user_id', '=', alice).execute();
    expect(counters.map((row) => row.used).sort()).toEqual([1, 20]);
  });
});
