import { describe, expect, it } from 'vitest';
import { checkPasswordRules, isCommonPassword, PasswordRejected } from './passwords.ts';

/** The owner the rules compare against; nothing in the blocklist cases resembles them. */
const owner = { email: 'alice.liddell@example.com', name: 'Alice Liddell' };

describe('the common-password blocklist', () => {
  it.each(['1234567890', 'qwertyuiop', 'password123', 'Password123', 'QWERTYUIOP', '1q2w3e4r5t', 'iloveyou12'])(
    'refuses %j, naming the rule',
    (password) => {
      expect(isCommonPassword(password)).toBe(true);
      expect(() => checkPasswordRules(password, owner)).toThrow(PasswordRejected);
      expect(() => checkPasswordRules(password, owner)).toThrow('password is too common');
    },
  );

  it.each(['correct horse battery staple', 'a long and good passphrase', 'analytical engine', 'qwertyuiop is my pass'])('accepts %j', (password) => {
    expect(isCommonPassword(password)).toBe(false);
    expect(() => checkPasswordRules(password, owner)).not.toThrow();
  });

  it('still applies the length rule first to short common passwords', () => {
    expect(() => checkPasswordRules('password', owner)).toThrow('at least 10 characters');
  });
});

describe('the blocklist after trimming and case-folding', () => {
  it.each(['password    ', '  password  ', '\tPASSWORD123 ', '   iloveyou   '])('refuses %j as too common', (password) => {
    expect(() => checkPasswordRules(password, owner)).toThrow('password is too common');
  });
});

describe('passwords built from the owner', () => {
  it.each([
    ['alice.liddell@example.com', 'password is your email address'],
    ['  ALICE.LIDDELL@Example.com ', 'password is your email address'],
    ['alice.liddell@example.com1', 'password is built from your email address'],
    ['liddell@1865', 'password is built from your name'],
    ['Alice Liddell', 'password is your name'],
    ['alice liddell 1865!', 'password is built from your name'],
    ['llеddil', 'at least 10 characters'],
    ['lleddilecila', 'password is built from your name'],
    ['Liddell2024!', 'password is built from your name'],
    ['liddell.liddell', 'password is built from your name'],
  ])('refuses %j: %s', (password, reason) => {
    expect(() => checkPasswordRules(password, owner)).toThrow(reason);
  });

  it("refuses the email's local part when it is long enough to matter", () => {
    const bob = { email: 'tweedledum@example.com', name: 'Bob' };
    expect(() => checkPasswordRules('tweedledum', bob)).toThrow('password is built from your email address');
    expect(() => checkPasswordRules('Tweedledum!!99', bob)).toThrow('password is built from your email address');
    expect(() => checkPasswordRules('bob bob bob bob', { email: 'bob@example.com', name: 'Bob' })).toThrow('repeats a short sequence');
  });

  it('accepts a passphrase that merely mentions the owner among other words', () => {
    expect(() => checkPasswordRules('alice went down the rabbit hole', owner)).not.toThrow();
    expect(() => checkPasswordRules('liddell family orchard', owner)).not.toThrow();
  });

  it('ignores local parts and name words shorter than four characters', () => {
    expect(() => checkPasswordRules('bob the builder tower', { email: 'bob@example.com', name: 'Bob Li' })).not.toThrow();
  });
});

describe('repetitive passwords', () => {
  it.each([
    ['          ', 'password repeats one character'],
    ['0000000000', 'password repeats one character'],
    ['aAaAaAaAaAaA', 'password repeats one character'],
    ['z z z z z z', 'password repeats one character'],
    ['abcabcabcabc', 'password repeats a short sequence of characters'],
    ['xyzwqxyzwq', 'password repeats a short sequence of characters'],
    ['ab ab ab ab ab', 'password repeats a short sequence of characters'],
  ])('refuses %j: %s', (password, reason) => {
    expect(() => checkPasswordRules(password, owner)).toThrow(reason);
  });

  it('accepts a unit longer than five characters repeated, and mostly different characters', () => {
    expect(() => checkPasswordRules('tortoise tortoise', owner)).not.toThrow();
    expect(() => checkPasswordRules('aaaa bbbb cccc dddd', owner)).not.toThrow();
  });
});

describe('sequential passwords', () => {
  it.each(['0123456789', 'abcdefghij', '9876543210', 'zyxwvutsrq', 'ABCDEFGHIJKL', '1234abcd6789', ';lkjhgfdsa', 'poiuytrewq', 'ghijk 56789'])(
    'refuses %j as a run of consecutive characters',
    (password) => {
      expect(() => checkPasswordRules(password, owner)).toThrow('password is a run of consecutive characters');
    },
  );

  it('accepts passwords that only contain a short run', () => {
    expect(() => checkPasswordRules('abc is my favourite song', owner)).not.toThrow();
    expect(() => checkPasswordRules('123 maple street north', owner)).not.toThrow();
  });
});
