import { promises as dns, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { describe, expect, it } from 'vitest';
import { checkLiteralHost, guardedLookup, refusalFor, RefusedDestination, type DestinationPolicy } from './destination.ts';

const STRICT: DestinationPolicy = { allowLoopback: false, allowPrivate: false };
const LOOPBACK: DestinationPolicy = { allowLoopback: true, allowPrivate: false };
const PRIVATE: DestinationPolicy = { allowLoopback: false, allowPrivate: true };
const OPEN: DestinationPolicy = { allowLoopback: true, allowPrivate: true };

describe('refusalFor', () => {
  it.each(['8.8.8.8', '1.1.1.1', '172.32.0.1', '2001:4860:4860::8888', '2606:4700:4700::1111'])(
    'allows the public address %s under every policy',
    (address) => {
      for (const policy of [STRICT, LOOPBACK, PRIVATE, OPEN]) expect(refusalFor(address, policy)).toBeUndefined();
    },
  );

  it.each(['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1'])('%s is loopback, allowed only with allowLoopback', (address) => {
    expect(refusalFor(address, STRICT)).toBe(`${address} is a loopback address`);
    // Private permission does not cover loopback.
    expect(refusalFor(address, PRIVATE)).toBe(`${address} is a loopback address`);
    expect(refusalFor(address, LOOPBACK)).toBeUndefined();
    expect(refusalFor(address, OPEN)).toBeUndefined();
  });

  it.each([
    '10.0.0.1',
    '10.255.255.255',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    'fd00::1',
    'fe80::1',
    '169.254.169.254',
    '100.64.0.1',
    '::ffff:10.0.0.1',
    '::ffff:169.254.169.254',
  ])('%s is private, allowed only with allowPrivate', (address) => {
    expect(refusalFor(address, STRICT)).toBe(`${address} is a private address`);
    // Loopback permission does not cover private ranges.
    expect(refusalFor(address, LOOPBACK)).toBe(`${address} is a private address`);
    expect(refusalFor(address, PRIVATE)).toBeUndefined();
    expect(refusalFor(address, OPEN)).toBeUndefined();
  });

  it.each([
    ['0.0.0.0', 'unspecified'],
    ['::', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['192.0.2.1', 'reserved'],
  ])('%s is always refused (%s)', (address, range) => {
    for (const policy of [STRICT, LOOPBACK, PRIVATE, OPEN]) {
      expect(refusalFor(address, policy)).toBe(`${address} is a special-use address (${range})`);
    }
  });

  it('refuses what is not an IP address', () => {
    expect(refusalFor('localhost', OPEN)).toBe('localhost is not an IP address');
    expect(refusalFor('', OPEN)).toBe(' is not an IP address');
  });
});

/** Calls the lookup the way net does, resolving to what its callback receives. */
function callLookup(lookup: LookupFunction, hostname: string, options: { all?: boolean; family?: number }) {
  return new Promise<{ error: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family: number | undefined }>((resolve) => {
    lookup(hostname, options, (error, address, family) => resolve({ error, address, family }));
  });
}

describe('guardedLookup', () => {
  it('resolves localhost like dns.lookup when loopback is allowed (single address)', async () => {
    const expected = await dns.lookup('localhost');
    const result = await callLookup(guardedLookup(LOOPBACK), 'localhost', {});
    expect(result.error).toBeNull();
    expect(result).toMatchObject({ address: expected.address, family: expected.family });
    expect(refusalFor(expected.address, STRICT)).toMatch(/loopback/);
  });

  it('resolves localhost to every address when net asks with all: true', async () => {
    const expected = await dns.lookup('localhost', { all: true });
    const result = await callLookup(guardedLookup(LOOPBACK), 'localhost', { all: true });
    expect(result.error).toBeNull();
    expect(result.address).toEqual(expected);
    expect(Array.isArray(result.address) && result.address.length).toBeGreaterThan(0);
  });

  it('honours the family net asks for', async () => {
    const result = await callLookup(guardedLookup(LOOPBACK), 'localhost', { family: 4 });
    expect(result).toMatchObject({ error: null, address: '127.0.0.1', family: 4 });
  });

  it.each([
    ['a single address', {}],
    ['all addresses', { all: true }],
  ])('refuses localhost without allowLoopback (%s)', async (_label, options) => {
    for (const policy of [STRICT, PRIVATE]) {
      const { error, address } = await callLookup(guardedLookup(policy), 'localhost', options);
      expect(error).toBeInstanceOf(RefusedDestination);
      expect(error?.code).toBe('ERR_DESTINATION_REFUSED');
      expect(error?.message).toMatch(/^localhost resolves to a refused address: .* is a loopback address$/);
      // Nothing a caller could connect to comes with the refusal.
      expect(address === '' || (Array.isArray(address) && address.length === 0)).toBe(true);
    }
  });
});

describe('checkLiteralHost', () => {
  it('refuses loopback literals without allowLoopback and accepts them with it', () => {
    for (const uri of ['http://[::1]:80/', 'http://127.0.0.1/', 'http://[::ffff:127.0.0.1]/', 'http://2130706433/']) {
      const url = new URL(uri);
      expect(() => checkLiteralHost(url, STRICT), uri).toThrow(RefusedDestination);
      expect(() => checkLiteralHost(url, PRIVATE), uri).toThrow(/is a loopback address$/);
      expect(() => checkLiteralHost(url, LOOPBACK), uri).not.toThrow();
    }
    expect(() => checkLiteralHost(new URL('http://[::1]:80/'), STRICT)).toThrow('::1 is a loopback address');
    expect(() => checkLiteralHost(new URL('http://127.0.0.1/'), STRICT)).toThrow('127.0.0.1 is a loopback address');
  });

  it('refuses private literals without allowPrivate, and special-use ones always', () => {
    expect(() => checkLiteralHost(new URL('https://10.1.2.3/logout'), STRICT)).toThrow('10.1.2.3 is a private address');
    expect(() => checkLiteralHost(new URL('https://[fd00::1]/logout'), STRICT)).toThrow('fd00::1 is a private address');
    expect(() => checkLiteralHost(new URL('https://10.1.2.3/logout'), PRIVATE)).not.toThrow();
    expect(() => checkLiteralHost(new URL('http://0.0.0.0:8080/'), OPEN)).toThrow(/special-use address \(unspecified\)/);
  });

  it('lets public literals and host names through (names are checked at lookup)', () => {
    expect(() => checkLiteralHost(new URL('https://8.8.8.8/'), STRICT)).not.toThrow();
    expect(() => checkLiteralHost(new URL('https://[2001:4860:4860::8888]/'), STRICT)).not.toThrow();
    expect(() => checkLiteralHost(new URL('http://localhost:3000/'), STRICT)).not.toThrow();
    expect(() => checkLiteralHost(new URL('https://rp.example/backchannel'), STRICT)).not.toThrow();
  });
});
