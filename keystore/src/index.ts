// The keystore's whole public surface.
export { createKeystore } from './keystore.ts';
export type { Keystore } from './keystore.ts';
export type { KeyEvent } from './context.ts';
export type { KeyInfo } from './queries.ts';
export type { SigningKeys } from './publish.ts';
export { planRotation, publishedKeys, rotationSchedule } from './lifecycle.ts';
export type { KeyRecord, KeyState, RotationPolicy, RotationSchedule, Transition } from './lifecycle.ts';
export { parseKek } from './kek.ts';
export type { Kek } from './kek.ts';
export { sealPrivateKey, openPrivateKey, sealValue, openValue, sealedWith } from './envelope.ts';
export { KeystoreError } from './errors.ts';
export type { ColumnCipher } from './column-key.ts';
export type { Aead } from './aead.ts';
export { generateSigningKey, SIGNING_ALG } from './generate.ts';
export type { KeystoreTables } from './tables.ts';
