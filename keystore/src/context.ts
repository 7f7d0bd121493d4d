import type { JWK } from 'jose';
import type { Kek } from './kek.ts';
import type { RotationPolicy } from './lifecycle.ts';
import type { KeyInfo, KeystoreDb } from './queries.ts';

/** What every keystore operation is given. */
export interface KeystoreContext {
  db: KeystoreDb;
  kek: Kek;
  policy: RotationPolicy;
  /** Private keys this keystore created or opened, by kid: each envelope is opened once. */
  opened: Map<string, JWK>;
}

/** One thing that happened to a key; every change is reported, for the log and the audit trail. */
export interface KeyEvent {
  event: 'key.created' | 'key.promoted' | 'key.retired' | 'key.removed' | 'key.revoked' | 'key.sealed' | 'key.rewrapped';
  kid: string;
  state?: KeyInfo['state'];
  activatesAt?: Date;
  retiresAt?: Date;
}
