import { createHash } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';

/**
 * Models whose id is itself a bearer credential (a code, a token, a request_uri, a registration
 * token): both adapters store them under SHA-256 of the id and keep the id (`jti`) out of the payload,
 * so a database dump, a backup or a Redis KEYS yields nothing that works at an endpoint. The provider
 * looks them up by the value it was handed, which the adapter hashes the same way.
 *
 * Not hashed, because the provider reads their id back from a lookup by another key: DeviceCode
 * (findByUserCode must return the device_code) and Session (findByUid, used to end sessions by uid).
 * Interaction and Grant ids are not credentials on their own (see docs/database.md).
 */
export const CREDENTIAL_MODELS: ReadonlySet<string> = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'ClientCredentials',
  'BackchannelAuthenticationRequest',
  'PushedAuthorizationRequest',
  'InitialAccessToken',
  'RegistrationAccessToken',
]);

/** The key a model's row or Redis hash is stored under: SHA-256, base64url, for credential models. */
export function storedIdOf(model: string, id: string): string {
  return CREDENTIAL_MODELS.has(model) ? createHash('sha256').update(id, 'utf8').digest('base64url') : id;
}

/** The payload as stored: without the credential itself. */
export function withoutCredential(model: string, payload: AdapterPayload): AdapterPayload {
  if (!CREDENTIAL_MODELS.has(model) || !('jti' in payload)) return payload;
  const { jti: _credential, ...rest } = payload;
  return rest;
}

/** The payload as the provider saved it: the credential is the id it was looked up by. */
export function withCredential(model: string, id: string, payload: AdapterPayload): AdapterPayload {
  return CREDENTIAL_MODELS.has(model) ? { ...payload, jti: id } : payload;
}
