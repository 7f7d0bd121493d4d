import { describe, expect, it } from 'vitest';
import { UsageError } from '../errors.ts';
import { windowSeconds } from './tokens.ts';

describe('tokens expiring --within', () => {
  it('reads a number and one unit: s, m, h or d', () => {
    expect(windowSeconds('7d')).toBe(7 * 24 * 60 * 60);
    expect(windowSeconds('24h')).toBe(24 * 60 * 60);
    expect(windowSeconds('90m')).toBe(90 * 60);
    expect(windowSeconds('3600s')).toBe(3600);
    expect(windowSeconds('366d')).toBe(366 * 24 * 60 * 60);
  });

  it('refuses anything else as a usage error naming --within', () => {
    for (const text of ['7', 'd', '7 days', '7D', '0d', '-1d', '1.5d', '7d ', '367d', '1w']) {
      expect(() => windowSeconds(text), text).toThrow(UsageError);
      expect(() => windowSeconds(text), text).toThrow(/--within/);
    }
  });
});
