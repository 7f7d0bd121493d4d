/** Keystore failures carry a stable code, like jose's errors, so callers branch on the code. */
export class KeystoreError extends Error {
  readonly code: 'ERR_KEK_INVALID' | 'ERR_KEK_MISMATCH' | 'ERR_ENVELOPE_INVALID' | 'ERR_KEY_NOT_FOUND' | 'ERR_KEY_STATE';

  constructor(code: KeystoreError['code'], message: string) {
    super(message);
    this.name = 'KeystoreError';
    this.code = code;
  }
}
