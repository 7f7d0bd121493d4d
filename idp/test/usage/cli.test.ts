import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asStoreOwner, cli } from '../../../test/support/cli.ts';
import { createTestStore, STORE_KINDS, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { periodOf } from '../../src/plans/period.ts';
import type { Tables } from '../../src/store.ts';

/* `idp plans list|set`, `idp usage show` and the seed's plans, through the real CLI on both stores. */


const PRO = { id: 'pro', name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] };
const BUSINESS = { id: 'business', name: 'Business Plus', limits: { applications: 5000, cover_letters: 100 }, desktop_devices: 10, features: ['auto_apply', 'priority'] };

describe.concurrent.each(STORE_KINDS)('plans and usage commands against the %s store', (kind) => {
  let store: TestStore;
  let env: Record<string, string>;
  let seedPath: string;

  const idp = cli(() => env);
  const ok = async (args: string[]) => (await idp.ok(args)).out;
  const { fails } = idp;

  /** The store as its owner (after the CLI process has exited and released it). */
  const inStore = <T>(fn: (db: Kysely<Tables>) => Promise<T>) => asStoreOwner(store, fn);

  const subscriptions = () =>
    inStore((db) =>
      db.selectFrom('subscriptions').innerJoin('users', 'users.id', 'subscriptions.user_id').select(['users.email', 'subscriptions.plan_id']).orderBy('users.email').execute(),
    );

  beforeAll(async () => {
    store = await createTestStore(kind);
    env = { ...storeEnvironment(store), LOG_LEVEL: 'warn' };
    seedPath = join(store.dataDir, 'seed.json');
  });

  afterAll(async () => {
    await store?.drop();
  });

  describe.sequential('step by step', () => {
    it('imports plans and users that name them; the summary counts the plans', async () => {
      const seed = {
        plans: [PRO, BUSINESS],
        users: [
          { email: 'ada@example.com', name: 'Ada', password: 'analytical engine', plan: 'pro' },
          { email: 'bob@example.com', name: 'Bob', password: 'a long and good passphrase' },
          { email: 'free@example.com', name: 'Free', password: 'another good passphrase', plan: 'free' },
        ],
      };
      await writeFile(seedPath, JSON.stringify(seed));
      const out = await ok(['import', '--file', seedPath]);
      expect(out.at(-1)).toBe('2 plans, 0 clients, 3 users imported, 0 changed');
      expect(await subscriptions()).toEqual([
        { email: 'ada@example.com', plan_id: 'pro' },
        { email: 'free@example.com', plan_id: 'free' },
      ]);
      // Importing the same file again changes nothing.
      expect(await ok(['import', '--file', seedPath])).toEqual(['0 plans, 0 clients, 0 users imported, 0 changed']);
    }, 150_000);

    it('plans list: one line per plan, id first, then name, limits, devices, features', async () => {
      expect(await ok(['plans', 'list'])).toEqual([
        'business  name="Business Plus"  limits=applications:5000,cover_letters:100  devices=10  features=auto_apply,priority',
        'free  name="Free"  limits=applications:20  devices=1  features=-',
        'pro  name="Pro"  limits=applications:500  devices=3  features=auto_apply',
      ]);
    }, 150_000);

    it('a changed plan and a user moved to another plan count as 2 changed, and are audited', async () => {
      const seed = { plans: [{ ...PRO, limits: { applications: 600 } }, BUSINESS], users: [{ email: 'ada@example.com', name: 'Ada', password: 'analytical engine', plan: 'business' }] };
      await writeFile(seedPath, JSON.stringify(seed));
      expect((await ok(['import', '--file', seedPath])).at(-1)).toBe('0 plans, 0 clients, 0 users imported, 2 changed');
      const events = await inStore((db) =>
        db.selectFrom('audit_events').select(['event_type', 'details']).where('event_type', 'in', ['plan.saved', 'plan.changed']).orderBy('id').execute(),
      );
      expect(events.map((event) => [event.event_type, event.details['plan'] ?? `${String(event.details['from'])}->${String(event.details['to'])}`, event.details['via']])).toEqual([
        ['plan.saved', 'pro', 'cli'],
        ['plan.saved', 'business', 'cli'],
        ['plan.changed', 'free->pro', 'cli'],
        ['plan.changed', 'free->free', 'cli'],
        ['plan.saved', 'pro', 'cli'],
        ['plan.changed', 'pro->business', 'cli'],
      ]);
    }, 150_000);

    it('a seed with a bad plan, or a user naming a plan that does not exist, writes nothing', async () => {
      const bad = join(store.dataDir, 'bad.json');
      await writeFile(bad, JSON.stringify({ plans: [{ ...PRO, id: 'team', limits: { applications: -5 } }], users: [{ email: 'new@example.com', password: 'a long and good passphrase' }] }));
      expect(await fails(['import', '--file', bad], 1)).toMatch(/plans\.0\.limits\.applications/);
      await writeFile(bad, JSON.stringify({ users: [{ email: 'new@example.com', password: 'a long and good passphrase', plan: 'platinum' }] }));
      expect(await fails(['import', '--file', bad], 1)).toMatch(/new@example\.com: no plan "platinum"/);
      expect(await inStore((db) => db.selectFrom('users').select('email').where('email', '=', 'new@example.com').execute())).toEqual([]);
      expect(await inStore((db) => db.selectFrom('plans').select('id').where('id', '=', 'team').execute())).toEqual([]);
    }, 150_000);

    it('plans set moves a user at once and is audited; the same plan again changes nothing', async () => {
      expect(await ok(['plans', 'set', '--email', 'bob@example.com', '--plan', 'pro'])).toEqual(['bob@example.com: plan free -> pro']);
      expect(await ok(['plans', 'set', '--email', 'BOB@example.com', '--plan', 'pro'])).toEqual(['bob@example.com: already on plan pro']);
      const changed = await inStore((db) =>
        db.selectFrom('audit_events').innerJoin('users', 'users.id', 'audit_events.user_id').select(['users.email', 'audit_events.details']).where('event_type', '=', 'plan.changed').where('users.email', '=', 'bob@example.com').execute(),
      );
      expect(changed).toHaveLength(1);
      expect(changed[0]?.details).toMatchObject({ from: 'free', to: 'pro', via: 'cli', operator: expect.any(String) });
    }, 150_000);

    it('plans set refuses an unknown plan or user (1) and a malformed plan id or missing flag (2)', async () => {
      expect(await fails(['plans', 'set', '--email', 'bob@example.com', '--plan', 'platinum'], 1)).toMatch(/no plan "platinum"/);
      expect(await fails(['plans', 'set', '--email', 'nobody@example.com', '--plan', 'pro'], 1)).toMatch(/no user with email nobody@example.com/);
      expect(await fails(['plans', 'set', '--email', 'bob@example.com', '--plan', 'Pro Plan'], 2)).toMatch(/--plan/);
      expect(await fails(['plans', 'set', '--email', 'bob@example.com'], 2)).toMatch(/--plan is required/);
    }, 150_000);

    it('usage show: one line per meter this month: meter, used, limit, period end', async () => {
      const period = periodOf(new Date());
      await inStore(async (db) => {
        const ada = await db.selectFrom('users').select('id').where('email', '=', 'ada@example.com').executeTakeFirstOrThrow();
        await db.insertInto('usage_counters').values({ user_id: ada.id, meter: 'applications', period_start: period.start, used: 12 }).execute();
        // Last month's usage is not this month's.
        await db.insertInto('usage_counters').values({ user_id: ada.id, meter: 'applications', period_start: periodOf(new Date(period.start.getTime() - 1)).start, used: 99 }).execute();
      });
      const end = period.end.toISOString().replace(/\.\d{3}Z$/, 'Z');
      expect(await ok(['usage', 'show', '--email', 'ada@example.com'])).toEqual([
        `applications  used=12  limit=5000  period_end=${end}`,
        `cover_letters  used=0  limit=100  period_end=${end}`,
      ]);
      expect(await ok(['usage', 'show', '--email', 'bob@example.com'])).toEqual([`applications  used=0  limit=600  period_end=${end}`]);
      expect(await fails(['usage', 'show', '--email', 'nobody@example.com'], 1)).toMatch(/no user/);
    }, 150_000);
  });
});
