import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseKek } from './kek.ts';
import { codeOfSync } from './keystore.fixtures.ts';

describe('parseKek', () => {
  // Bytes that need + and / in base64, so base64 and base64url spell them differently.
  const bytes = Buffer.alloc(32, 0xfb);
  bytes[31] = 0xff;
  const base64 = bytes.toString('base64');
  const base64url = bytes.toString('base64url');

  it('accepts base64 and base64url of the same 32 bytes, with the same key and id', () => {
    expect(base64).toMatch(/[+/]/);
    expect(base64).toHaveLength(44);
    expect(base64url).toHaveLength(43);
    const a = parseKek(base64);
    const b = parseKek(base64url);
    expect(Buffer.from(a.key).equals(bytes)).toBe(true);
    expect(Buffer.from(b.key).equals(bytes)).toBe(true);
    expect(a.id).toBe(b.id);
    expect(a.id).toMatch(/^kek-[A-Za-z0-9_-]{16}$/);
    // Surrounding whitespace and line breaks (a file's trailing newline) are ignored.
    expect(parseKek(`  ${base64.slice(0, 20)}\n${base64.slice(20)}\n`).id).toBe(a.id);
    // Unpadded base64 is accepted too.
    expect(parseKek(base64.replace(/=+$/, '')).id).toBe(a.id);
  });

  it('names different keys differently, and the id does not reveal the key', () => {
    const one = parseKek(randomBytes(32).toString('base64'));
    const two = parseKek(randomBytes(32).toString('base64'));
    expect(one.id).not.toBe(two.id);
    expect(base64).not.toContain(parseKek(base64).id.slice(4));
    expect(base64url).not.toContain(parseKek(base64).id.slice(4));
  });

  it.each([
    ['empty', ''],
    ['whitespace only', '  \n'],
    ['16 bytes', randomBytes(16).toString('base64')],
    ['31 bytes', randomBytes(31).toString('base64')],
    ['33 bytes', randomBytes(33).toString('base64')],
    ['64 bytes', randomBytes(64).toString('base64')],
    ['hex of 32 bytes (48 bytes as base64)', randomBytes(32).toString('hex')],
  ])('rejects a wrong length (%s) with ERR_KEK_INVALID', (_name, text) => {
    expect(codeOfSync(() => parseKek(text))).toBe('ERR_KEK_INVALID');
  });

  it.each([
    ['punctuation', '!'.repeat(44)],
    ['a dot inside', `${base64.slice(0, 20)}.${base64.slice(21)}`],
    ['padding in the middle', `${base64.slice(0, 20)}=${base64.slice(21)}`],
    ['non-ASCII', `${base64.slice(0, 42)}é=`],
    ['a quoted value', `"${base64}"`],
  ])('rejects non-base64 (%s) with ERR_KEK_INVALID', (_name, text) => {
    expect(codeOfSync(() => parseKek(text))).toBe('ERR_KEK_INVALID');
  });

  it('the length error says how to create a key', () => {
    expect(() => parseKek(randomBytes(31).toString('base64'))).toThrow(/32 bytes.*it has 31.*openssl rand -base64 32/);
  });
});
