import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAead, deriveKey } from './aead.ts';
import { KeystoreError } from './errors.ts';
import { codeOfSync } from './keystore.fixtures.ts';

describe('the short-lived value cipher', () => {
  const dataKey = new Uint8Array(randomBytes(32));
  const aead = createAead(deriveKey(dataKey, 'refresh answer'), 'refresh answer');

  it('seals with a fresh IV each time and opens only for the same place', () => {
    const plaintext = JSON.stringify({ refresh_token: 'rt-ü', access_token: 'at' });
    const one = aead.seal(plaintext, 'refresh answer k1');
    const two = aead.seal(plaintext, 'refresh answer k1');
    expect(one).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(one).not.toBe(two);
    expect(one).not.toContain('rt-');
    expect(aead.open(one, 'refresh answer k1')).toBe(plaintext);
    expect(aead.open(two, 'refresh answer k1')).toBe(plaintext);
    expect(codeOfSync(() => aead.open(one, 'refresh answer k2'))).toBe('ERR_ENVELOPE_INVALID');
  });

  it('refuses anything altered, truncated, of another format or under another key', () => {
    const sealed = aead.seal('value', 'here');
    const body = Buffer.from(sealed.slice(3), 'base64url');
    for (const index of [0, 12, body.length - 1]) {
      const altered = Buffer.from(body);
      altered[index]! ^= 1;
      expect(codeOfSync(() => aead.open(`v1.${altered.toString('base64url')}`, 'here'))).toBe('ERR_ENVELOPE_INVALID');
    }
    expect(codeOfSync(() => aead.open(`v1.${body.subarray(0, 20).toString('base64url')}`, 'here'))).toBe('ERR_ENVELOPE_INVALID');
    expect(codeOfSync(() => aead.open(sealed.slice(3), 'here'))).toBe('ERR_ENVELOPE_INVALID');
    // Another purpose derives another key from the same data key; another data key, another key again.
    expect(codeOfSync(() => createAead(deriveKey(dataKey, 'other purpose'), 'x').open(sealed, 'here'))).toBe('ERR_ENVELOPE_INVALID');
    expect(codeOfSync(() => createAead(deriveKey(new Uint8Array(randomBytes(32)), 'refresh answer'), 'x').open(sealed, 'here'))).toBe('ERR_ENVELOPE_INVALID');
    expect(createAead(deriveKey(dataKey, 'refresh answer'), 'again').open(sealed, 'here')).toBe('value');
  });

  it('takes 256-bit keys only', () => {
    expect(() => deriveKey(new Uint8Array(16), 'p')).toThrow(KeystoreError);
    expect(() => createAead(Buffer.alloc(16), 'p')).toThrow(KeystoreError);
  });
});
