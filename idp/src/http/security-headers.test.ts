import { describe, expect, it } from 'vitest';
import { newCspNonce } from './security-headers.ts';

describe('CSP nonces', () => {
  it('are 16 bytes of base64, and never repeat across many refills of the pool', () => {
    const nonces = Array.from({ length: 5_000 }, () => newCspNonce());
    for (const nonce of nonces) expect(Buffer.from(nonce, 'base64')).toHaveLength(16);
    expect(new Set(nonces).size).toBe(nonces.length);
    // Not a counter or a fixed pattern: about half of all bits are set.
    const ones = nonces.reduce((sum, nonce) => sum + [...Buffer.from(nonce, 'base64')].reduce((bits, byte) => bits + byte.toString(2).replaceAll('0', '').length, 0), 0);
    expect(ones / (nonces.length * 128)).toBeGreaterThan(0.48);
    expect(ones / (nonces.length * 128)).toBeLessThan(0.52);
  });
});
