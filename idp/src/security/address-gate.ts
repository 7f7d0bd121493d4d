/**
 * Lets at most `capacity` holders per key through at once, in this process; the others wait their
 * turn, in arrival order. `enter` resolves to the function that leaves (idempotent).
 */
export function addressGate(capacity: number): (key: string) => Promise<() => void> {
  const gates = new Map<string, { inside: number; waiting: Array<() => void> }>();
  return async (key) => {
    let gate = gates.get(key);
    if (!gate) {
      gate = { inside: 0, waiting: [] };
      gates.set(key, gate);
    }
    const entered = gate;
    if (entered.inside >= capacity) {
      // A leaving holder hands its place over, so `inside` is unchanged when this resumes.
      await new Promise<void>((resolve) => entered.waiting.push(resolve));
    } else {
      entered.inside += 1;
    }
    let left = false;
    return () => {
      if (left) return;
      left = true;
      const next = entered.waiting.shift();
      if (next) return next();
      entered.inside -= 1;
      if (entered.inside === 0) gates.delete(key);
    };
  };
}
