import { randomUUID } from 'node:crypto';
import type { AdapterPayload } from 'oidc-provider';

/** Test fixtures shared by the adapter contract suites (database and Redis). */

/** Models whose payload carries the grant they belong to. */
export const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'ClientCredentials',
  'BackchannelAuthenticationRequest',
]);

export const newId = (label: string) => `${label}-${randomUUID()}`;
export const epochNow = () => Math.floor(Date.now() / 1000);

/** A payload shaped like the model's, with nested values of every JSON type to check the round trip. */
export function payloadFor(model: string, id: string, extra: AdapterPayload = {}): AdapterPayload {
  const base: AdapterPayload = {
    jti: id,
    kind: model,
    iat: 1_760_000_000,
    exp: 1_760_003_600,
    clientId: 'client-app',
    scope: 'openid email offline_access',
    extra: {
      nested: { list: [1, 2.5, 'two', null, true, false], empty: {} },
      text: 'Zoë says ✓ "quoted" \\ 日本',
    },
  };
  if (GRANTABLE.has(model)) base.grantId = `grant-of-${id}`;
  if (model === 'Session') {
    base.uid = `uid-of-${id}`;
    base.accountId = 'account-1';
    base.authorizations = { 'client-app': { sid: 'sid-1', grantId: 'grant-1', persistsLogout: false } };
  }
  if (model === 'DeviceCode') base.userCode = `UC-${id}`;
  if (model === 'Client') {
    base.client_id = id;
    base.redirect_uris = ['https://app.example/cb'];
  }
  return { ...base, ...extra };
}
