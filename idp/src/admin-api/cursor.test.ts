import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ProblemError } from '../http/errors.ts';
import { decodeCursor, encodeCursor, pageOf, pageOfList } from './cursor.ts';

describe('admin API cursors', () => {
  it('give back the key they carry, for the key type of their list', () => {
    expect(decodeCursor(encodeCursor('b7c1'), z.string())).toBe('b7c1');
    expect(decodeCursor(encodeCursor(42), z.number().int())).toBe(42);
    expect(decodeCursor(undefined, z.string())).toBeUndefined();
  });

  it('refuse with a 400 problem what no list gave: garbage, JSON without a key, a key of another type', () => {
    for (const cursor of ['not-a-cursor', Buffer.from('{"x":1}').toString('base64url'), Buffer.from('null').toString('base64url'), encodeCursor('abc')]) {
      expect(() => decodeCursor(cursor, z.number().int())).toThrow(expect.objectContaining({ status: 400 }) as ProblemError);
    }
  });

  it('pageOf: limit items, a next cursor only when a row beyond the limit was fetched', () => {
    expect(pageOf([1, 2, 3], 2, (row) => row, (row) => row * 10)).toEqual({ items: [10, 20], next_cursor: encodeCursor(2) });
    expect(pageOf([1, 2], 2, (row) => row, (row) => row)).toEqual({ items: [1, 2], next_cursor: null });
    expect(pageOf([], 2, (row: number) => row, (row) => row)).toEqual({ items: [], next_cursor: null });
  });

  it('pageOfList walks a whole list in key order, each item once', () => {
    const all = ['d', 'a', 'c', 'b', 'e'];
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = pageOfList(all, after, 2, (row) => row, (row) => row);
      seen.push(...page.items);
      if (page.next_cursor === null) break;
      after = decodeCursor(page.next_cursor, z.string());
    }
    expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
  });
});
