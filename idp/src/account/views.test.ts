import { describe, expect, it } from 'vitest';
import { meterLine } from './views.ts';

describe('meterLine', () => {
  it('says used of limit and the day the period resets (UTC)', () => {
    expect(meterLine({ meter: 'applications', used: 12, limit: 500, period_end: '2032-01-01T00:00:00.000Z' })).toBe('12 of 500 applications, resets on 1 January');
    expect(meterLine({ meter: 'cover_letters', used: 0, limit: 0, period_end: '2031-03-01T00:00:00.000Z' })).toBe('0 of 0 cover letters, resets on 1 March');
  });
});
