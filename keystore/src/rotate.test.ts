import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { STORE_KINDS } from '../../test/support/stores.ts';
import { holdThreadpool } from '../../test/support/threads.ts';
import type { KeyEvent } from './context.ts';
import { keystoreOnStore, LONG, TINY, eventsOf, near, signsAndVerifies } from './keystore.fixtures.ts';

describe.each(STORE_KINDS)('keystore rotation on the %s store', (kind) => {
  const fixture = keystoreOnStore(kind);
  const { keystore, rows, row, databaseNow, kidsIn, db } = fixture;

  it('rotateNow promotes: the old key retires but still verifies; the new key signs, first and without key_ops', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    const before = await keys.signingKeys();
    const now = await databaseNow();

    const events = await keys.rotateNow();
    expect(events.map((event) => event.event)).toEqual(['key.created', 'key.retired', 'key.promoted']);
    const second = events[0]!.kid;
    expect(second).not.toBe(first);
    expect(events[1]).toMatchObject({ kid: first, state: 'retired' });
    near(events[1]!.retiresAt, new Date(now.getTime() + LONG.retainSeconds * 1000));
    expect(events[2]).toMatchObject({ kid: second, state: 'current' });

    const listed = await keys.list();
    expect(listed.map((key) => [key.kid, key.state]).sort()).toEqual([
      [first, 'retired'],
      [second, 'current'],
    ].sort());
    near(listed.find((key) => key.kid === first)?.retiresAt ?? undefined, new Date(now.getTime() + LONG.retainSeconds * 1000));
    near(listed.find((key) => key.kid === second)?.activatesAt ?? undefined, now);

    for (const view of [keys, keystore()]) {
      const signing = await view.signingKeys();
      expect(signing.version).not.toBe(before.version);
      expect(signing.jwks.keys.map((jwk) => jwk.kid)).toEqual([second, first]);
      expect(signing.jwks.keys[0]).not.toHaveProperty('key_ops');
      expect(signing.jwks.keys[1]!.key_ops).toEqual(['verify']);
      // The retired key is the same key as before, still usable to verify what it signed.
      expect(signing.jwks.keys[1]!.d).toBe(before.jwks.keys[0]!.d);
    }
    const stored = await rows();
    for (const jwk of (await keys.signingKeys()).jwks.keys) {
      const { key_ops: _ops, ...privateJwk } = jwk;
      await signsAndVerifies(privateJwk, stored.find((r) => r.kid === jwk.kid)!.public_jwk);
    }
  });

  it('rotateIfDue follows the schedule: next key in the prepublication window, promotion when due, removal after retention', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    expect(await keys.rotateIfDue()).toEqual([]);

    // Due in 70 s; the next key is published from 60 s before that: not yet.
    await sql`update signing_keys set activates_at = now() - interval '3530 seconds' where kid = ${first}`.execute(db());
    expect(await keys.rotateIfDue()).toEqual([]);

    // Due in 55 s, inside the 60 s window: a next key, signing no earlier than 60 s from now.
    await sql`update signing_keys set activates_at = now() - interval '3545 seconds' where kid = ${first}`.execute(db());
    const now = await databaseNow();
    const created = await keys.rotateIfDue();
    expect(created).toHaveLength(1);
    expect(created[0]).toMatchObject({ event: 'key.created', state: 'next' });
    near(created[0]!.activatesAt, new Date(now.getTime() + 60_000));
    const second = created[0]!.kid;
    expect(await kidsIn('next')).toEqual([second]);
    // The next key is published for verification only; the current one still signs.
    const published = await keys.signingKeys();
    expect(published.jwks.keys.map((jwk) => [jwk.kid, jwk.key_ops])).toEqual([
      [first, undefined],
      [second, ['verify']],
    ]);
    // Nothing more until its time comes.
    expect(await keys.rotateIfDue()).toEqual([]);

    await sql`update signing_keys set activates_at = now() - interval '1 second' where kid = ${second}`.execute(db());
    const promoted = await keys.rotateIfDue();
    expect(eventsOf(promoted)).toEqual([`key.retired ${first}`, `key.promoted ${second}`]);
    expect(await kidsIn('current')).toEqual([second]);
    expect(await kidsIn('retired')).toEqual([first]);

    // Retained until retires_at, then deleted.
    expect(await keys.rotateIfDue()).toEqual([]);
    await sql`update signing_keys set retires_at = now() - interval '1 second' where kid = ${first}`.execute(db());
    expect(eventsOf(await keys.rotateIfDue())).toEqual([`key.removed ${first}`]);
    expect((await rows()).map((r) => r.kid)).toEqual([second]);
    expect((await keys.signingKeys()).jwks.keys.map((jwk) => jwk.kid)).toEqual([second]);
  });

  it('a next key signs no earlier than prepublishSeconds after it was written, however long generating it took', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    // Due in 55 s, inside the 60 s window.
    await sql`update signing_keys set activates_at = now() - interval '3545 seconds' where kid = ${first}`.execute(db());
    // Every threadpool thread held for a second, as bcrypt hashes keep them under sign-in load:
    // generating and sealing the key wait for them, inside the rotation's transaction.
    const before = await databaseNow();
    const release = await holdThreadpool();
    const released = sleep(1_000).then(release);
    const created = await keys.rotateIfDue();
    const committed = await databaseNow();
    await released;
    expect(committed.getTime() - before.getTime(), 'the key generation waited for the threadpool').toBeGreaterThanOrEqual(950);
    expect(created).toHaveLength(1);
    // Published (committed) a few milliseconds after it was written, never more than that.
    expect(created[0]!.activatesAt!.getTime()).toBeGreaterThanOrEqual(committed.getTime() + LONG.prepublishSeconds * 1000 - 250);
    expect((await row(created[0]!.kid))!.activates_at!.getTime()).toBe(created[0]!.activatesAt!.getTime());
  });

  it('rotateNow promotes the waiting next key rather than creating another', async () => {
    const keys = keystore();
    const [{ kid: first }] = (await keys.open()) as [KeyEvent];
    await sql`update signing_keys set activates_at = now() - interval '3590 seconds' where kid = ${first}`.execute(db());
    const [created] = await keys.rotateIfDue();
    expect(created).toMatchObject({ event: 'key.created', state: 'next' });

    expect(eventsOf(await keys.rotateNow())).toEqual([`key.retired ${first}`, `key.promoted ${created!.kid}`]);
    expect((await rows()).map((r) => [r.kid, r.state])).toEqual([
      [first, 'retired'],
      [created!.kid, 'current'],
    ]);
  });

  it('two keystores racing rotateIfDue() apply each due change once: one next key, one promotion', async () => {
    // Warm both pools so that the two calls really start together.
    await Promise.all([sql`select 1`.execute(db()), sql`select 1`.execute(fixture.otherDb())]);
    const one = keystore({ policy: TINY });
    const two = keystore({ policy: TINY, on: fixture.otherDb() });
    const [{ kid: first }] = (await one.open()) as [KeyEvent];
    const history: KeyEvent[] = [];

    /** Both keystores at once. Each call applies at most one rotation step, so a race never yields two of a kind. */
    async function race(): Promise<KeyEvent[][]> {
      const results = await Promise.all([one.rotateIfDue(), two.rotateIfDue()]);
      const events = results.flat();
      const count = (name: KeyEvent['event']) => events.filter((event) => event.event === name).length;
      expect(count('key.created'), eventsOf(events).join(', ')).toBeLessThanOrEqual(1);
      expect(count('key.promoted'), eventsOf(events).join(', ')).toBeLessThanOrEqual(1);
      expect(count('key.retired')).toBe(count('key.promoted'));
      expect(await kidsIn('current')).toHaveLength(1);
      expect((await kidsIn('next')).length).toBeLessThanOrEqual(1);
      history.push(...events);
      return results;
    }

    // With a 1 s rotation a next key is due at once: exactly one is created. (Under load the second
    // call may start after that key's activation and promote it: one promotion, of that key.)
    const round1 = await race();
    const creator = round1.findIndex((events) => events.some((event) => event.event === 'key.created'));
    expect(creator).toBeGreaterThanOrEqual(0);
    expect(round1[creator]!.map((event) => `${event.event} ${event.state}`)).toEqual(['key.created next']);
    const second = round1[creator]![0]!.kid;
    const late = round1[1 - creator]!;
    expect(eventsOf(late)).toEqual(late.length > 0 ? [`key.retired ${first}`, `key.promoted ${second}`] : []);

    if (!history.some((event) => event.event === 'key.promoted')) {
      // Wait (for real) until the next key's activation time has passed by the database clock.
      const activatesAt = (await row(second))!.activates_at!;
      await sleep(Math.max(0, activatesAt.getTime() - (await databaseNow()).getTime()) + 150);
      const round2 = (await race()).flat();
      expect(round2.filter((event) => event.event !== 'key.created').map((event) => `${event.event} ${event.kid}`)).toEqual([
        `key.retired ${first}`,
        `key.promoted ${second}`,
      ]);
    }
    // One more race: the new current key's next is due at once, and is created once at most.
    await race();

    // Over all the races the keys form one chain: `second` replaced `first`, and (when the machine is
    // so slow that a later next key came due too) each later promotion replaced the previous current
    // key with a key created earlier. No key was created twice, promoted twice or retired twice.
    const promoted = history.filter((event) => event.event === 'key.promoted').map((event) => event.kid);
    const retired = history.filter((event) => event.event === 'key.retired').map((event) => event.kid);
    const createdKids = history.filter((event) => event.event === 'key.created').map((event) => event.kid);
    expect(promoted[0]).toBe(second);
    expect(retired).toEqual([first, ...promoted.slice(0, -1)]);
    expect(promoted.every((kid) => createdKids.includes(kid))).toBe(true);
    expect(new Set(createdKids).size).toBe(createdKids.length);
    expect(new Set(promoted).size).toBe(promoted.length);
    expect(await kidsIn('current')).toEqual([promoted.at(-1)]);
    expect((await kidsIn('retired')).sort()).toEqual([...retired].sort());
    const stored = await rows();
    expect(stored).toHaveLength(1 + createdKids.length);
    expect(stored.map((r) => r.kid).sort()).toEqual([first, ...createdKids].sort());
  });
});
