import { errors, type AccessToken, type ClientCredentials, type KoaContextWithOIDC } from 'oidc-provider';
import { unlessUnavailable } from '@jobswipe/adapters';
import { PlanRejected, UnknownUser, type Entitlements } from '../plans/service.ts';

/** The scope that asks for a user's plan (docs/usage.md), and the claims it stands for. */
export const ENTITLEMENTS_SCOPE = 'entitlements';
export const ENTITLEMENT_CLAIMS = ['plan', 'entitlements'] as const;

/** The plan claims of a user, read now (never cached in the grant: a plan change shows in the next token). */
export type EntitlementsOf = (userId: string) => Promise<Entitlements>;

/**
 * One read of a user's plan per request: a token response that carries the scope asks for the same
 * claims twice (the ID token's claims and the access token's extraTokenClaims).
 */
export function oncePerRequest(entitlementsOf: EntitlementsOf): (request: object, userId: string) => Promise<Entitlements> {
  const read = new WeakMap<object, Map<string, Promise<Entitlements>>>();
  return (request, userId) => {
    let users = read.get(request);
    if (!users) read.set(request, (users = new Map()));
    let entitlements = users.get(userId);
    if (!entitlements) users.set(userId, (entitlements = entitlementsOf(userId)));
    return entitlements;
  };
}

/** DEFAULT_PLAN names no plan (logged at start-up): no token can say what the user may do. */
class EntitlementsUnavailable extends errors.OIDCProviderError {
  override readonly error_description = 'the plan of this account cannot be read now; try again later';

  constructor(cause: unknown) {
    super(503, 'temporarily_unavailable', { cause });
    this.expose = true;
  }
}

const carriesScope = (scope: string | undefined) => (scope ?? '').split(' ').includes(ENTITLEMENTS_SCOPE);

/**
 * The `plan` and `entitlements` claims when `scope` carries `entitlements`; nothing (and no query)
 * otherwise, or for an account that is gone.
 */
export async function entitlementClaims(entitlementsOf: EntitlementsOf, userId: string, scope: string | undefined): Promise<Partial<Entitlements>> {
  if (!carriesScope(scope)) return {};
  try {
    return await unlessUnavailable(entitlementsOf(userId));
  } catch (error) {
    if (error instanceof UnknownUser) return {};
    if (error instanceof PlanRejected) throw new EntitlementsUnavailable(error);
    throw error;
  }
}

/**
 * oidc-provider's extraTokenClaims: a user's access token for the API (a JWT) that carries the
 * `entitlements` scope gets the claims. Other tokens (client credentials, userinfo's opaque tokens)
 * cost no query.
 */
export function entitlementTokenClaims(entitlementsOf: (request: object, userId: string) => Promise<Entitlements>) {
  return async (ctx: KoaContextWithOIDC, token: AccessToken | ClientCredentials): Promise<Partial<Entitlements> | undefined> => {
    if (token.kind !== 'AccessToken' || !('accountId' in token) || !token.accountId || !token.resourceServer) return undefined;
    const claims = await entitlementClaims((userId) => entitlementsOf(ctx.req, userId), token.accountId, token.scope);
    return Object.keys(claims).length > 0 ? claims : undefined;
  };
}
