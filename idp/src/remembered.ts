/**
 * A pure function of a short string, remembered: the same few clients, addresses and peers make most
 * requests, and each would otherwise be hashed or parsed again every time. Bounded: a flood of
 * distinct values empties it rather than growing it.
 */
export function remembered<T>(compute: (value: string) => T, max = 10_000): (value: string) => T {
  const kept = new Map<string, T>();
  return (value) => {
    if (kept.has(value)) return kept.get(value) as T;
    if (kept.size >= max) kept.clear();
    const result = compute(value);
    kept.set(value, result);
    return result;
  };
}
