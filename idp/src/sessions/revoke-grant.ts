import { REFRESH_REPLAY_MODEL } from '@jobswipe/adapters';
import type { Adapter } from 'oidc-provider';

/** Models that belong to a grant and die with it (a rotation's kept answer too: it holds the grant's tokens). */
const GRANT_BOUND_MODELS = ['AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode', 'BackchannelAuthenticationRequest', REFRESH_REPLAY_MODEL];

/** Revokes a grant and every token issued under it. */
export async function revokeGrant(adapter: new (name: string) => Adapter, grantId: string): Promise<void> {
  await Promise.all(GRANT_BOUND_MODELS.map((model) => new adapter(model).revokeByGrantId(grantId)));
  await new adapter('Grant').destroy(grantId);
}
