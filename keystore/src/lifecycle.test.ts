import { describe, expect, it } from 'vitest';
import { planRotation, publishedKeys, rotationSchedule, type KeyRecord, type KeyState, type RotationPolicy } from './lifecycle.ts';

const POLICY: RotationPolicy = { rotationSeconds: 1000, prepublishSeconds: 100, retainSeconds: 500 };

/** T0 plus the given seconds (fractions allowed). */
const T0 = new Date('2030-01-01T00:00:00.000Z');
const at = (seconds: number) => new Date(T0.getTime() + seconds * 1000);

function key(kid: string, state: KeyState, fields: Partial<KeyRecord> = {}): KeyRecord {
  return { kid, state, createdAt: at(0), activatesAt: null, retiresAt: null, ...fields };
}

const current = (fields: Partial<KeyRecord> = {}) => key('cur', 'current', { activatesAt: at(0), ...fields });

describe('planRotation', () => {
  it('bootstraps: no keys at all creates a current key', () => {
    expect(planRotation([], at(0), POLICY)).toEqual([{ type: 'create-current' }]);
  });

  it('only revoked (or retired) keys count as no key: a current key is created', () => {
    const keys = [key('old', 'revoked'), key('ret', 'retired', { retiresAt: at(10_000) })];
    expect(planRotation(keys, at(0), POLICY)).toEqual([{ type: 'create-current' }]);
  });

  it('does nothing before (due - prepublish): no next key yet', () => {
    // due = 1000, publish from 900.
    expect(planRotation([current()], at(0), POLICY)).toEqual([]);
    expect(planRotation([current()], at(899.999), POLICY)).toEqual([]);
  });

  it('creates the next key exactly at (due - prepublish), activating at due', () => {
    expect(planRotation([current()], at(900), POLICY)).toEqual([{ type: 'create-next', activatesAt: at(1000) }]);
  });

  it('measures the due time from activatesAt, falling back to createdAt', () => {
    const activatedLate = current({ createdAt: at(0), activatesAt: at(50) });
    expect(planRotation([activatedLate], at(949.999), POLICY)).toEqual([]);
    expect(planRotation([activatedLate], at(950), POLICY)).toEqual([{ type: 'create-next', activatesAt: at(1050) }]);

    const neverActivated = current({ createdAt: at(20), activatesAt: null });
    expect(planRotation([neverActivated], at(919.999), POLICY)).toEqual([]);
    expect(planRotation([neverActivated], at(920), POLICY)).toEqual([{ type: 'create-next', activatesAt: at(1020) }]);
  });

  it('a next key created late still gets the full prepublication window (now + prepublish)', () => {
    // Inside the window: due (1000) is earlier than now + prepublish (1050).
    expect(planRotation([current()], at(950), POLICY)).toEqual([{ type: 'create-next', activatesAt: at(1050) }]);
    // Long overdue (the servers were down): still published for the whole window first.
    expect(planRotation([current()], at(5000), POLICY)).toEqual([{ type: 'create-next', activatesAt: at(5100) }]);
  });

  it('waits while a next key exists and is not yet active: no second next, no promotion', () => {
    const keys = [current(), key('nxt', 'next', { createdAt: at(900), activatesAt: at(1000) })];
    expect(planRotation(keys, at(950), POLICY)).toEqual([]);
    expect(planRotation(keys, at(999.999), POLICY)).toEqual([]);
  });

  it('promotes the next key when its activation time has come, retiring the current key for retainSeconds', () => {
    const keys = [current(), key('nxt', 'next', { createdAt: at(900), activatesAt: at(1000) })];
    expect(planRotation(keys, at(1000), POLICY)).toEqual([{ type: 'promote', kid: 'nxt', retire: 'cur', retiresAt: at(1500) }]);
    // Late (no process ran at 1000): retiresAt counts from the actual promotion.
    expect(planRotation(keys, at(1234), POLICY)).toEqual([{ type: 'promote', kid: 'nxt', retire: 'cur', retiresAt: at(1734) }]);
  });

  it('with no current key but a next one, promotes the next at once, whatever its activation time', () => {
    const keys = [key('nxt', 'next', { createdAt: at(0), activatesAt: at(10_000) }), key('gone', 'revoked')];
    expect(planRotation(keys, at(5), POLICY)).toEqual([{ type: 'promote', kid: 'nxt', retire: undefined, retiresAt: at(505) }]);
  });

  it('removes a retired key once its retiresAt has passed, and not a moment before', () => {
    const retired = key('ret', 'retired', { activatesAt: at(-1000), retiresAt: at(300) });
    expect(planRotation([current(), retired], at(299.999), POLICY)).toEqual([]);
    expect(planRotation([current(), retired], at(300), POLICY)).toEqual([{ type: 'remove', kid: 'ret' }]);
    expect(planRotation([current(), retired], at(301), POLICY)).toEqual([{ type: 'remove', kid: 'ret' }]);
  });

  it('applies the promotion before removals, and removes only the expired retired keys', () => {
    const keys = [
      current(),
      key('nxt', 'next', { activatesAt: at(1000) }),
      key('expired', 'retired', { retiresAt: at(900) }),
      key('fresh', 'retired', { retiresAt: at(1200) }),
      key('revoked', 'revoked', { retiresAt: null }),
    ];
    expect(planRotation(keys, at(1000), POLICY)).toEqual([
      { type: 'promote', kid: 'nxt', retire: 'cur', retiresAt: at(1500) },
      { type: 'remove', kid: 'expired' },
    ]);
  });

  it('a full rotation cycle driven by the plan: next at 900, current at 1000, old removed at 1500', () => {
    let keys: KeyRecord[] = [current()];
    const step = (seconds: number) => {
      const now = at(seconds);
      const transitions = planRotation(keys, now, POLICY);
      for (const transition of transitions) {
        if (transition.type === 'create-next') keys.push(key(`k${seconds}`, 'next', { createdAt: now, activatesAt: transition.activatesAt }));
        if (transition.type === 'promote') {
          keys = keys.map((k) =>
            k.kid === transition.kid
              ? { ...k, state: 'current', activatesAt: now }
              : k.kid === transition.retire
                ? { ...k, state: 'retired', retiresAt: transition.retiresAt }
                : k,
          );
        }
        if (transition.type === 'remove') keys = keys.filter((k) => k.kid !== transition.kid);
      }
      return transitions.map((transition) => transition.type);
    };
    expect(step(899)).toEqual([]);
    expect(step(900)).toEqual(['create-next']);
    expect(step(901)).toEqual([]);
    expect(step(1000)).toEqual(['promote']);
    expect(keys.map((k) => [k.kid, k.state])).toEqual([
      ['cur', 'retired'],
      ['k900', 'current'],
    ]);
    expect(step(1499)).toEqual([]);
    expect(step(1500)).toEqual(['remove']);
    expect(keys.map((k) => k.kid)).toEqual(['k900']);
    // The new key's own cycle starts from its activation: next at 1900.
    expect(step(1899)).toEqual([]);
    expect(step(1900)).toEqual(['create-next']);
  });

  it('does not modify the keys it is given', () => {
    const keys = [current(), key('nxt', 'next', { activatesAt: at(1000) })];
    const before = structuredClone(keys);
    planRotation(keys, at(2000), POLICY);
    expect(keys).toEqual(before);
  });
});

describe('publishedKeys', () => {
  it('leaves revoked keys out and orders current, next, retired (retired keys in their given order)', () => {
    const keys = [
      key('r1', 'retired'),
      key('x1', 'revoked'),
      key('n', 'next'),
      key('r2', 'retired'),
      key('c', 'current'),
      key('x2', 'revoked'),
    ];
    expect(publishedKeys(keys).map((k) => k.kid)).toEqual(['c', 'n', 'r1', 'r2']);
    // The input is left as it was.
    expect(keys.map((k) => k.kid)).toEqual(['r1', 'x1', 'n', 'r2', 'c', 'x2']);
  });

  it('keeps the extra fields of the records it is given', () => {
    const keys = [
      { ...key('r', 'retired'), envelope: 'E-r' },
      { ...key('c', 'current'), envelope: 'E-c' },
    ];
    expect(publishedKeys(keys).map((k) => k.envelope)).toEqual(['E-c', 'E-r']);
  });

  it('is empty when every key is revoked', () => {
    expect(publishedKeys([key('a', 'revoked'), key('b', 'revoked')])).toEqual([]);
  });
});

describe('rotationSchedule', () => {
  it('is undefined while no key signs', () => {
    expect(rotationSchedule([], POLICY)).toBeUndefined();
    expect(rotationSchedule([key('n', 'next', { activatesAt: at(10) }), key('r', 'revoked')], POLICY)).toBeUndefined();
  });

  it('without a next key: due rotationSeconds after the current key took over (createdAt when it has no activation time)', () => {
    expect(rotationSchedule([current({ activatesAt: at(50) })], POLICY)).toEqual({ kid: 'cur', signingSince: at(50), rotatesAt: at(1050) });
    expect(rotationSchedule([current({ activatesAt: null, createdAt: at(7) })], POLICY)).toEqual({ kid: 'cur', signingSince: at(7), rotatesAt: at(1007) });
  });

  it('with a next key waiting: its activation time, early or late', () => {
    expect(rotationSchedule([current(), key('n', 'next', { activatesAt: at(1200) })], POLICY)?.rotatesAt).toEqual(at(1200));
    expect(rotationSchedule([key('n', 'next', { activatesAt: at(900) }), current()], POLICY)?.rotatesAt).toEqual(at(900));
  });
});
