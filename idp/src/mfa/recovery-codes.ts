import { createHash, randomBytes } from 'node:crypto';

/** How many codes a user gets when the authenticator app is turned on. */
export const RECOVERY_CODE_COUNT = 10;

// Base32 without the letters people confuse with digits in handwriting is not needed: codes are
// compared without case, dashes or spaces, and the alphabet has no 0, 1, 8 or 9.
const ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';

/**
 * Ten codes of 16 base32 characters (80 random bits each), shown as `xxxx-xxxx-xxxx-xxxx`. 80 bits
 * make a plain SHA-256 enough at rest: nobody can try 2^80 hashes, and a code is then found by its
 * hash (bcrypt's salt would make every sign-in check all ten).
 */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: RECOVERY_CODE_COUNT }, () => {
    const bytes = randomBytes(16);
    const characters = [...bytes].map((byte) => ALPHABET[byte & 31]).join('');
    return characters.match(/.{4}/g)!.join('-');
  });
}

/** What the user typed, as the code was made: lower case, without dashes or spaces. */
export function normalizeRecoveryCode(input: string): string {
  return input.replace(/[\s-]/g, '').toLowerCase();
}

export function hashRecoveryCode(input: string): string {
  return createHash('sha256').update(normalizeRecoveryCode(input)).digest('hex');
}

/** Six digits (spaces allowed, as apps show `123 456`): an authenticator app's code; anything else may be a recovery code. */
export function isAppCode(input: string): boolean {
  return /^\d{6}$/.test(input.replace(/\s/g, ''));
}
