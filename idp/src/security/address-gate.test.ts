import { describe, expect, it } from 'vitest';
import { addressGate } from './address-gate.ts';

describe('addressGate', () => {
  it('lets capacity holders of one key in at once; the next enters, in order, as one leaves', async () => {
    const enter = addressGate(2);
    const first = await enter('a');
    const second = await enter('a');
    const order: string[] = [];
    const third = enter('a').then((leave) => (order.push('third'), leave));
    const fourth = enter('a').then((leave) => (order.push('fourth'), leave));
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual([]);
    first();
    first(); // leaving twice frees one place only
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['third']);
    second();
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).toEqual(['third', 'fourth']);
    (await third)();
    (await fourth)();
  });

  it('keeps keys apart', async () => {
    const enter = addressGate(1);
    await enter('a');
    let other = false;
    await enter('b').then(() => (other = true));
    expect(other).toBe(true);
  });
});
