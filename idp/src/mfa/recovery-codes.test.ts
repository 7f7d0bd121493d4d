import { describe, expect, it } from 'vitest';
import { hashRecoveryCode, isAppCode, newRecoveryCodes, normalizeRecoveryCode } from './recovery-codes.ts';

describe('recovery codes', () => {
  it('makes ten different codes of 16 base32 characters in groups of four', () => {
    const codes = newRecoveryCodes();
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    for (const code of codes) expect(code).toMatch(/^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$/);
  });

  it('matches a code typed in capitals, with spaces or without dashes', () => {
    const [code] = newRecoveryCodes();
    expect(hashRecoveryCode(code!.toUpperCase())).toBe(hashRecoveryCode(code!));
    expect(hashRecoveryCode(` ${code!.replaceAll('-', ' ')} `)).toBe(hashRecoveryCode(code!));
    expect(normalizeRecoveryCode('AB-cd ef')).toBe('abcdef');
    expect(hashRecoveryCode(code!)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('tells an app code from a recovery code', () => {
    expect(isAppCode('123456')).toBe(true);
    expect(isAppCode('123 456')).toBe(true);
    expect(isAppCode('12345')).toBe(false);
    expect(isAppCode('abcd-efgh-ijkl-mnop')).toBe(false);
  });
});
