import { describe, expect, it } from 'vitest';
import { remembered } from './remembered.ts';

describe('remembered', () => {
  it('computes each value once, and keeps falsy answers too', () => {
    const calls: string[] = [];
    const trusted = remembered((peer) => {
      calls.push(peer);
      return peer.startsWith('127.');
    });
    expect([trusted('127.0.0.1'), trusted('10.0.0.1'), trusted('127.0.0.1'), trusted('10.0.0.1')]).toEqual([true, false, true, false]);
    expect(calls).toEqual(['127.0.0.1', '10.0.0.1']);
  });

  it('starts over once it holds its bound, so distinct values never grow it past that', () => {
    const calls: string[] = [];
    const upper = remembered((value) => {
      calls.push(value);
      return value.toUpperCase();
    }, 2);
    upper('a');
    upper('b');
    upper('c');
    upper('a');
    upper('c');
    expect(calls).toEqual(['a', 'b', 'c', 'a']);
  });
});
