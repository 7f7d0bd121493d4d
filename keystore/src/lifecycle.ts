/** A signing key's place in its life: next -> current -> retired -> removed; revoked at any point. */
export type KeyState = 'next' | 'current' | 'retired' | 'revoked';

export interface KeyRecord {
  kid: string;
  state: KeyState;
  createdAt: Date;
  activatesAt: Date | null;
  retiresAt: Date | null;
}

export interface RotationPolicy {
  /** How long a key signs before the next one takes over. */
  rotationSeconds: number;
  /** How long a next key is published before it signs: at least the JWKS cache lifetime. */
  prepublishSeconds: number;
  /** How long a retired key stays published: the longest lifetime of anything it signed. */
  retainSeconds: number;
}

export type Transition =
  | { type: 'create-current' }
  | { type: 'create-next'; activatesAt: Date }
  | { type: 'promote'; kid: string; retire: string | undefined; retiresAt: Date }
  | { type: 'remove'; kid: string };

const later = (date: Date, seconds: number) => new Date(date.getTime() + seconds * 1000);

/**
 * When a next key published at `publishedAt` may sign: when it is due, but never before it has been
 * published for the whole prepublication window (a key created late, or long overdue, waits).
 */
export function nextActivation(due: Date, publishedAt: Date, policy: Pick<RotationPolicy, 'prepublishSeconds'>): Date {
  const earliest = later(publishedAt, policy.prepublishSeconds);
  return earliest > due ? earliest : due;
}

/**
 * What the scheduled rotation must do now. Pure: the keys and the clock in, transitions out, in the
 * order they are to be applied.
 */
export function planRotation(keys: readonly KeyRecord[], now: Date, policy: RotationPolicy): Transition[] {
  const transitions: Transition[] = [];
  const current = keys.find((key) => key.state === 'current');
  const next = keys.find((key) => key.state === 'next');
  const retireAt = later(now, policy.retainSeconds);

  if (!current) {
    // Nothing signs (first start, or the current key was revoked): a next key takes over at once.
    transitions.push(next ? { type: 'promote', kid: next.kid, retire: undefined, retiresAt: retireAt } : { type: 'create-current' });
  } else if (next && next.activatesAt && next.activatesAt <= now) {
    transitions.push({ type: 'promote', kid: next.kid, retire: current.kid, retiresAt: retireAt });
  } else if (!next) {
    const due = later(current.activatesAt ?? current.createdAt, policy.rotationSeconds);
    const publishFrom = later(due, -policy.prepublishSeconds);
    if (now >= publishFrom) transitions.push({ type: 'create-next', activatesAt: nextActivation(due, now, policy) });
  }

  for (const key of keys) {
    if (key.state === 'retired' && key.retiresAt && key.retiresAt <= now) transitions.push({ type: 'remove', kid: key.kid });
  }
  return transitions;
}

/** The keys relying parties may see: every key that is not revoked or removed, the signing one first. */
export function publishedKeys<K extends KeyRecord>(keys: readonly K[]): K[] {
  const order: Record<KeyState, number> = { current: 0, next: 1, retired: 2, revoked: 3 };
  return keys.filter((key) => key.state !== 'revoked').sort((a, b) => order[a.state] - order[b.state]);
}

/** When the signing key took over, and when the next one is to take over from it. */
export interface RotationSchedule {
  kid: string;
  signingSince: Date;
  rotatesAt: Date;
}

/**
 * The current key's schedule: the waiting next key's activation, or (none created yet) when one is
 * due. Undefined when no key signs. A `rotatesAt` in the past by more than a poll or two means the
 * scheduled rotation is not being applied (monitoring warns about it).
 */
export function rotationSchedule(keys: readonly KeyRecord[], policy: Pick<RotationPolicy, 'rotationSeconds'>): RotationSchedule | undefined {
  const current = keys.find((key) => key.state === 'current');
  if (!current) return undefined;
  const next = keys.find((key) => key.state === 'next');
  const signingSince = current.activatesAt ?? current.createdAt;
  return { kid: current.kid, signingSince, rotatesAt: next?.activatesAt ?? later(signingSince, policy.rotationSeconds) };
}
