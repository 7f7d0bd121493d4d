import { safeStorage } from 'electron';
import type { SecretStorage } from '../src/secret-storage.ts';

/** The OS keychain (Keychain, DPAPI, libsecret/kwallet) through Electron's safeStorage. */
export const electronSecretStorage: SecretStorage = {
  // On Linux without a keyring, safeStorage falls back to a hard-coded password: not encryption.
  isEncryptionAvailable: () => safeStorage.isEncryptionAvailable() && (process.platform !== 'linux' || safeStorage.getSelectedStorageBackend() !== 'basic_text'),
  encryptString: (plain) => safeStorage.encryptString(plain),
  decryptString: (sealed) => safeStorage.decryptString(sealed),
};
