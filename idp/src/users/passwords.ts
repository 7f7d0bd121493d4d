import { randomBytes } from 'node:crypto';
import { dictionary } from '@zxcvbn-ts/language-common';
import bcrypt from 'bcrypt';

/** bcrypt reads at most 72 bytes; longer passwords would be silently truncated, so we refuse them. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 10;

export class PasswordRejected extends Error {
  readonly code = 'ERR_PASSWORD_REJECTED';
}

export function checkPasswordRules(password: string): void {
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new PasswordRejected(`password must be at least ${MIN_PASSWORD_LENGTH} characters`);
  }
  // bcrypt stops reading at a NUL byte, so everything after one would be ignored.
  if (password.includes('\u0000')) throw new PasswordRejected('password must not contain NUL characters');
  if (Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES) {
    throw new PasswordRejected(`password must be at most ${MAX_PASSWORD_BYTES} bytes (UTF-8)`);
  }
  if (isCommonPassword(password)) {
    throw new PasswordRejected('password is too common: it is on a list of passwords that are often used and guessed first; choose another');
  }
}

/**
 * zxcvbn-ts's list of the most common passwords (from leaked-password corpora, lower case). Only
 * entries long enough to pass the length rule can matter, so only those are kept.
 */
const COMMON_PASSWORDS = new Set(dictionary['passwords-common'].filter((entry) => [...entry].length >= MIN_PASSWORD_LENGTH));

/** Case-insensitive: "Password123" is guessed as early as "password123". */
export function isCommonPassword(password: string): boolean {
  return COMMON_PASSWORDS.has(password.toLowerCase());
}

const BCRYPT_HASH = /^\$2[aby]\$(\d{2})\$[./A-Za-z0-9]{53}$/;

export function bcryptCost(hash: string): number | undefined {
  const match = BCRYPT_HASH.exec(hash);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

export interface PasswordHasher {
  hash(password: string): Promise<string>;
  /** Constant-work check: an absent hash is compared against a dummy so unknown users cost the same. */
  verify(password: string, hash: string | null | undefined): Promise<boolean>;
  /** true when a stored hash was made with a lower cost than configured and should be replaced. */
  needsRehash(hash: string): boolean;
}

export function createPasswordHasher(cost: number): PasswordHasher {
  let dummy: Promise<string> | undefined;
  const dummyHash = () => (dummy ??= bcrypt.hash(randomBytes(32).toString('base64url'), cost));
  return {
    hash: (password) => bcrypt.hash(password, cost),
    async verify(password, hash) {
      const usable = hash !== null && hash !== undefined && bcryptCost(hash) !== undefined;
      const tooLong = Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES;
      const matches = await bcrypt.compare(password, usable ? hash : await dummyHash());
      return usable && !tooLong && matches;
    },
    needsRehash: (hash) => (bcryptCost(hash) ?? 0) < cost,
  };
}
