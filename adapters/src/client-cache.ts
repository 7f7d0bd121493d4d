import type { AdapterPayload } from 'oidc-provider';

/** The channel on which the database announces a changed client (migration 0016): its id, or `*` for all. */
export const CLIENT_CHANGES_CHANNEL = 'jobswipe_clients';

/** Registered clients are few; the bound only guards memory against a flood of distinct ids. */
const MAX_ENTRIES = 10_000;

/**
 * Clients as the adapter opened them (metadata with the secret unsealed), kept between requests so
 * that a token request neither queries the database for its client nor opens its sealed secret.
 *
 * Correct across processes only while change notifications arrive: every write to a client row
 * announces itself (a trigger, NOTIFY), each process drops what it kept for that client, and while
 * the listening connection is down nothing is kept at all (anything may have changed meanwhile).
 * A lookup that raced with a change is not kept: the generation moved on while it ran.
 */
export class ClientCache {
  readonly #entries = new Map<string, AdapterPayload>();
  #generation = 0;
  #listening = false;

  /** The kept client, if any: deeply frozen, shared by every caller (a change throws instead of leaking into the next request). */
  get(id: string): AdapterPayload | undefined {
    if (!this.#listening) return undefined;
    return this.#entries.get(id);
  }

  /** Taken before the database is read; `keep` then refuses the result if anything changed meanwhile. */
  generation(): number {
    return this.#generation;
  }

  keep(id: string, payload: AdapterPayload, generation: number): void {
    if (!this.#listening || generation !== this.#generation) return;
    if (this.#entries.size >= MAX_ENTRIES) this.#entries.clear();
    this.#entries.set(id, deepFreeze(structuredClone(payload)));
  }

  /** A client changed (`*`: any may have). */
  changed(id: string): void {
    this.#generation += 1;
    if (id === '*') this.#entries.clear();
    else this.#entries.delete(id);
  }

  /** Whether change notifications are being received: without them nothing is kept. */
  listening(listening: boolean): void {
    this.#listening = listening;
    this.changed('*');
  }

  get size(): number {
    return this.#entries.size;
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

const caches = new WeakMap<object, ClientCache>();

/** The one cache of the clients of a database handle: every adapter over it shares it (a write through one is seen by all). */
export function clientCacheOf(db: object): ClientCache {
  let cache = caches.get(db);
  if (!cache) caches.set(db, (cache = new ClientCache()));
  return cache;
}
