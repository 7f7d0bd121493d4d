import { describe, expect, it } from 'vitest';
import { checkPasswordRules, isCommonPassword, PasswordRejected } from './passwords.ts';

describe('the common-password blocklist', () => {
  it.each(['1234567890', 'qwertyuiop', 'password123', 'Password123', 'QWERTYUIOP', '1q2w3e4r5t', 'iloveyou12'])(
    'refuses %j, naming the rule',
    (password) => {
      expect(isCommonPassword(password)).toBe(true);
      expect(() => checkPasswordRules(password)).toThrow(PasswordRejected);
      expect(() => checkPasswordRules(password)).toThrow('password is too common');
    },
  );

  it.each(['correct horse battery staple', 'a long and good passphrase', 'analytical engine', 'qwertyuiop is my pass'])('accepts %j', (password) => {
    expect(isCommonPassword(password)).toBe(false);
    expect(() => checkPasswordRules(password)).not.toThrow();
  });

  it('still applies the length rule first to short common passwords', () => {
    expect(() => checkPasswordRules('password')).toThrow('at least 10 characters');
  });
});
