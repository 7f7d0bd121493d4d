import type { AdapterPayload } from 'oidc-provider';
import { NoticedCache, noticedCacheOf } from './noticed-cache.ts';

/** The channel on which the database announces a changed client (migration 0016): its id, or `*` for all. */
export const CLIENT_CHANGES_CHANNEL = 'jobswipe_clients';

/** Registered clients are few; the bound only guards memory against a flood of distinct ids. */
const MAX_ENTRIES = 10_000;

/**
 * Clients as the adapter opened them (metadata with the secret unsealed), kept between requests so
 * that a token request neither queries the database for its client nor opens its sealed secret.
 * Every write to a client row announces itself (migration 0016); see NoticedCache.
 */
export class ClientCache extends NoticedCache<AdapterPayload> {
  constructor() {
    super(MAX_ENTRIES);
  }

  /** Kept deeply frozen and shared by every caller: a change throws instead of leaking into the next request. */
  override keep(id: string, payload: AdapterPayload, generation: number): void {
    if (!this.keeping || generation !== this.generation()) return;
    super.keep(id, deepFreeze(structuredClone(payload)), generation);
  }
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const member of Object.values(value)) deepFreeze(member);
  }
  return value;
}

/** The one cache of the clients of a database handle: every adapter over it shares it (a write through one is seen by all). */
export function clientCacheOf(db: object): ClientCache {
  return noticedCacheOf(db, 'clients', () => new ClientCache()) as ClientCache;
}
