import { createHash } from 'node:crypto';
import { KeystoreError } from './errors.ts';

/** A key-encryption key: 32 random bytes, named by a fingerprint that reveals nothing about them. */
export interface Kek {
  readonly id: string;
  readonly key: Uint8Array;
}

/** Parses a KEK written as base64 or base64url (44 or 43 characters for 32 bytes; whitespace ignored). */
export function parseKek(text: string): Kek {
  const compact = text.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(compact)) {
    throw new KeystoreError('ERR_KEK_INVALID', 'the key-encryption key must be 32 bytes written in base64');
  }
  const key = Buffer.from(compact.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) {
    throw new KeystoreError('ERR_KEK_INVALID', `the key-encryption key must be 32 bytes (it has ${key.length}); create one with \`openssl rand -base64 32\``);
  }
  const id = `kek-${createHash('sha256').update('jobswipe keystore kek id\0').update(key).digest('base64url').slice(0, 16)}`;
  return { id, key: new Uint8Array(key) };
}
