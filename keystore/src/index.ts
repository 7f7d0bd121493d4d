export { createKeystore } from './store.ts';
export type { Keystore, KeyInfo } from './store.ts';
export { generateSigningKey, SIGNING_ALG } from './generate.ts';
export type { KeystoreTables, KeyState } from './tables.ts';
