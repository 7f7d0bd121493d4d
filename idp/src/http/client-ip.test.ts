import { describe, expect, it } from 'vitest';
import { limitedNetwork } from './client-ip.ts';

describe('limitedNetwork', () => {
  it('counts an IPv4 address as itself, and an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(limitedNetwork('198.51.100.7')).toBe('198.51.100.7');
    expect(limitedNetwork('::ffff:198.51.100.7')).toBe('198.51.100.7');
    expect(limitedNetwork('::FFFF:c633:6407')).toBe('198.51.100.7');
  });

  it('counts every address of one IPv6 /64 as that /64, and another /64 apart', () => {
    const network = limitedNetwork('2001:db8:1:2::1');
    expect(network).toBe('2001:db8:1:2::/64');
    expect(limitedNetwork('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe(network);
    expect(limitedNetwork('2001:0DB8:0001:0002:0:0:0:0')).toBe(network);
    expect(limitedNetwork('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(limitedNetwork('::1')).toBe('::/64');
  });

  it('keeps what is not an address as it is (no key is ever empty)', () => {
    expect(limitedNetwork('unknown')).toBe('unknown');
  });
});
