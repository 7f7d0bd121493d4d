/**
 * Rows kept between requests while every change to them is announced (a trigger, NOTIFY; see
 * Database.listen), so that a hot lookup does not query the database each time.
 *
 * Correct across processes only while the notices arrive: each process forgets what a notice names,
 * and while its listening connection is down it keeps nothing at all (anything may have changed
 * meanwhile). A lookup that raced with a change is not kept: the generation moved on while it ran.
 * Bounded: past `maxEntries` the entry kept longest ago goes first.
 */
export class NoticedCache<T> {
  readonly #entries = new Map<string, T>();
  readonly #maxEntries: number;
  #generation = 0;
  #listening = false;

  constructor(maxEntries: number) {
    if (!(maxEntries >= 1)) throw new RangeError('a cache keeps at least one entry');
    this.#maxEntries = maxEntries;
  }

  /** The kept value, if any. */
  get(id: string): T | undefined {
    if (!this.#listening) return undefined;
    return this.#entries.get(id);
  }

  /** Taken before the database is read; `keep` then refuses the result if anything changed meanwhile. */
  generation(): number {
    return this.#generation;
  }

  keep(id: string, value: T, generation: number): void {
    if (!this.#listening || generation !== this.#generation) return;
    this.#entries.delete(id);
    if (this.#entries.size >= this.#maxEntries) this.#entries.delete(this.#entries.keys().next().value!);
    this.#entries.set(id, value);
  }

  /** A row changed (`*`: any may have). */
  changed(id: string): void {
    this.#generation += 1;
    if (id === '*') this.#entries.clear();
    else this.#entries.delete(id);
  }

  /** Whether change notices are being received: without them nothing is kept. */
  listening(listening: boolean): void {
    this.#listening = listening;
    this.changed('*');
  }

  /** Whether `keep` would keep anything now. */
  get keeping(): boolean {
    return this.#listening;
  }

  get size(): number {
    return this.#entries.size;
  }
}

const perHandle = new WeakMap<object, Map<string, NoticedCache<unknown>>>();

/**
 * The one cache named `name` of a database handle: every reader and writer over that handle shares
 * it (a write through one is seen by all), and the server makes it listen for that handle.
 */
export function noticedCacheOf<T>(db: object, name: string, create: () => NoticedCache<T>): NoticedCache<T> {
  let caches = perHandle.get(db);
  if (!caches) perHandle.set(db, (caches = new Map()));
  let cache = caches.get(name) as NoticedCache<T> | undefined;
  if (!cache) caches.set(name, (cache = create()));
  return cache;
}
