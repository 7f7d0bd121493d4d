/**
 * Process-wide state that must exist once per bundle even if Next evaluates a module more than once
 * (chunks shared by several routes, dev-mode reloads): it hangs off globalThis.
 */
export function processState<T>(name: string, create: () => T): T {
  const key = Symbol.for(`jobswipe-web.${name}`);
  const store = globalThis as unknown as Record<symbol, T | undefined>;
  store[key] ??= create();
  return store[key];
}
