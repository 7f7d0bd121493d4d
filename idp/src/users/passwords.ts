import { randomBytes } from 'node:crypto';
import { dictionary } from '@zxcvbn-ts/language-common';
import bcrypt from 'bcrypt';

/** bcrypt reads at most 72 bytes; longer passwords would be silently truncated, so we refuse them. */
export const MAX_PASSWORD_BYTES = 72;
export const MIN_PASSWORD_LENGTH = 10;

export class PasswordRejected extends Error {
  readonly code = 'ERR_PASSWORD_REJECTED';
}

/** Whose password it is: a password built from their own address or name is guessed early (NIST SP 800-63B 3.1.1.2). */
export interface PasswordOwner {
  email: string;
  name?: string | undefined;
}

/**
 * The password rules, checked in this order so the message names the first rule broken: length,
 * NUL, bcrypt's 72 bytes, the blocklist, the owner's email and name, repetition, sequences.
 * Documented in docs/security.md (password policy) and docs/accounts.md.
 */
export function checkPasswordRules(password: string, owner: PasswordOwner): void {
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
  const personal = personalWordIn(password, owner);
  if (personal) throw new PasswordRejected(personal);
  const repeated = repetitionIn(password);
  if (repeated) throw new PasswordRejected(repeated);
  if (isSequential(password)) {
    throw new PasswordRejected('password is a run of consecutive characters (like 0123456789, abcdefghij or qwertyuiop); choose another');
  }
}

/** Spaces around a password and its case do not make it harder to guess (NIST: compare after normalising). */
function folded(password: string): string {
  return password.normalize('NFKC').trim().toLowerCase();
}

/** The same without any whitespace: "a b c d e" is guessed like "abcde". */
function compact(password: string): string {
  return folded(password).replace(/\s+/gu, '');
}

/**
 * zxcvbn-ts's list of the most common passwords (from leaked-password corpora, lower case). Every
 * entry is kept: a short one padded with spaces ("password" plus four spaces) passes the length rule.
 */
const COMMON_PASSWORDS = new Set(dictionary['passwords-common']);

/** Case-insensitive and after trimming: "  Password123 " is guessed as early as "password123". */
export function isCommonPassword(password: string): boolean {
  return COMMON_PASSWORDS.has(folded(password));
}

/** A local part or name word shorter than this is too common a string to refuse on its own. */
const MIN_PERSONAL_LENGTH = 4;
/** What may be left after the owner's words are taken out, in letters, for the password to still be "built from" them. */
const MAX_LETTERS_ADDED = 3;

/** Letters and digits only: "J.Smith-2024!" compares as "jsmith2024". */
function skeleton(text: string): string {
  return folded(text).replace(/[^\p{L}\p{N}]/gu, '');
}

/**
 * The owner's email address, its local part and their name (whole, and each word of four letters or
 * more), compared case-folded as letters and digits only, forwards or reversed. Refused: the password
 * is made of them (repeated or combined) with only digits, symbols, spaces and at most three other
 * letters added ("Alice2024!", "alice.alice", "!!ecila!!", "john smith 1985").
 */
function personalWordIn(password: string, owner: PasswordOwner): string | undefined {
  const [local = ''] = owner.email.split('@');
  const parts = (text: string) => [text, ...text.split(/[^\p{L}\p{N}]+/u)];
  const personal: Array<{ word: string; what: string; whole?: boolean }> = [
    { word: owner.email, what: 'your email address', whole: true },
    ...(owner.name ? [{ word: owner.name, what: 'your name', whole: true }] : []),
    ...(owner.name ? parts(owner.name) : []).map((word) => ({ word, what: 'your name' })),
    ...parts(local).map((word) => ({ word, what: 'your email address' })),
  ];
  let rest = skeleton(password);
  let found: (typeof personal)[number] | undefined;
  // Longest first, so a whole name is taken out before its words.
  for (const entry of personal.sort((a, b) => skeleton(b.word).length - skeleton(a.word).length)) {
    const word = skeleton(entry.word);
    if ([...word].length < MIN_PERSONAL_LENGTH) continue;
    const reversed = [...word].reverse().join('');
    if (!rest.includes(word) && !rest.includes(reversed)) continue;
    found ??= entry;
    rest = rest.split(word).join('').split(reversed).join('');
  }
  if (!found || rest.replace(/\p{N}/gu, '').length > MAX_LETTERS_ADDED) return undefined;
  const exactly = found.whole === true && compact(password) === compact(found.word);
  return `password ${exactly ? 'is' : 'is built from'} ${found.what}; choose one that has nothing to do with it`;
}

/** The longest unit that may be repeated: "abcde" five times is as easy to guess as "abcde". */
const MAX_REPEATED_UNIT = 5;

/** One character throughout (ten spaces, "0000000000", "a A a A a A"), or one short unit repeated ("abcabcabcabc"). */
function repetitionIn(password: string): string | undefined {
  const chars = [...folded(password)];
  if (chars.length === 0 || new Set(chars).size === 1) return 'password repeats one character; choose another';
  const text = [...compact(password)];
  if (new Set(text).size === 1) return 'password repeats one character; choose another';
  for (let unit = 2; unit <= MAX_REPEATED_UNIT && unit * 2 <= text.length; unit += 1) {
    if (text.length % unit === 0 && text.every((char, index) => char === text[index % unit])) {
      return 'password repeats a short sequence of characters; choose another';
    }
  }
  return undefined;
}

/** Runs people type without thinking: the alphabet, the digits, and the rows of a US keyboard. */
const SEQUENCES = ['abcdefghijklmnopqrstuvwxyz', '01234567890', '1234567890-=', 'qwertyuiop[]', "asdfghjkl;'", 'zxcvbnm,./'].flatMap((sequence) => [
  sequence,
  [...sequence].reverse().join(''),
]);
/** A run shorter than this ("ab", "12") is ordinary text. */
const MIN_RUN = 3;

function isRun(text: string): boolean {
  return text.length >= MIN_RUN && SEQUENCES.some((sequence) => sequence.includes(text));
}

/**
 * The whole password (case-folded, without spaces) is made of runs of at least three consecutive
 * characters, forwards or backwards: "0123456789", "abcdefghij", "9876543210", "1234abcd", "qwertyasdfgh".
 */
function isSequential(password: string): boolean {
  const text = compact(password);
  if (text.length < MIN_RUN) return false;
  // covered[i]: text.slice(0, i) splits into runs.
  const covered = [true, ...Array.from({ length: text.length }, () => false)];
  for (let end = MIN_RUN; end <= text.length; end += 1) {
    for (let start = 0; start <= end - MIN_RUN && !covered[end]; start += 1) {
      if (covered[start] && isRun(text.slice(start, end))) covered[end] = true;
    }
  }
  return covered[text.length] === true;
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
