import { describe, expect, it } from 'vitest';
import { periodOf, previousPeriodOf, secondsUntil } from './period.ts';

describe('usage periods (calendar months in UTC)', () => {
  it('a period runs from the first instant of the UTC month to the first of the next', () => {
    expect(periodOf(new Date('2031-01-31T23:59:59.999Z'))).toEqual({ start: new Date('2031-01-01T00:00:00Z'), end: new Date('2031-02-01T00:00:00Z') });
    expect(periodOf(new Date('2031-02-01T00:00:00Z'))).toEqual({ start: new Date('2031-02-01T00:00:00Z'), end: new Date('2031-03-01T00:00:00Z') });
  });

  it('December rolls into January of the next year; leap years have their February', () => {
    expect(periodOf(new Date('2030-12-15T12:00:00Z')).end).toEqual(new Date('2031-01-01T00:00:00Z'));
    expect(periodOf(new Date('2032-02-29T10:00:00Z'))).toEqual({ start: new Date('2032-02-01T00:00:00Z'), end: new Date('2032-03-01T00:00:00Z') });
  });

  it('is UTC whatever the offset the instant was written with', () => {
    // 00:30 on 1 March in Berlin is still February in UTC.
    expect(periodOf(new Date('2031-03-01T00:30:00+01:00')).start).toEqual(new Date('2031-02-01T00:00:00Z'));
  });

  it('the previous period of January is December of the year before', () => {
    expect(previousPeriodOf(new Date('2031-01-10T00:00:00Z'))).toEqual({ start: new Date('2030-12-01T00:00:00Z'), end: new Date('2031-01-01T00:00:00Z') });
  });

  it('Retry-After counts whole seconds up to the end, never less than 1', () => {
    const end = new Date('2031-02-01T00:00:00Z');
    expect(secondsUntil(end, new Date('2031-01-31T23:59:00Z'))).toBe(60);
    expect(secondsUntil(end, new Date('2031-01-31T23:59:59.500Z'))).toBe(1);
    expect(secondsUntil(end, new Date('2031-02-01T00:00:00Z'))).toBe(1);
  });
});
