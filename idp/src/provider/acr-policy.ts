import { interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';
import { satisfies } from '../interactions/sign-in-result.ts';

/** The login prompt's reason when only the level is missing (interactions/routes.ts then asks for the second factor alone). */
export const STEP_UP_REASON = 'acr_values_mfa';

/**
 * oidc-provider's prompts with one more login check: acr_values is only a wish in OpenID Connect,
 * and the provider does not enforce it, so a request that insists on two factors
 * (`acr_values=urn:jobswipe:acr:mfa`) gets the login prompt while the session's sign-in is below
 * that level. prompt=none then fails with login_required, as for max_age.
 */
export function acrEnforcingPolicy(): interactionPolicy.DefaultPolicy {
  const policy = interactionPolicy.base();
  const login = policy.get('login');
  if (!login) throw new Error('oidc-provider has no login prompt');
  login.checks.add(
    new interactionPolicy.Check(STEP_UP_REASON, 'the requested authentication level could not be obtained', 'login_required', (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx;
      if (!oidc.session?.accountId) return interactionPolicy.Check.NO_NEED_TO_PROMPT;
      const acr = (oidc.result?.['login'] as { acr?: string } | undefined)?.acr ?? oidc.acr;
      return satisfies(oidc.params?.['acr_values'], acr) ? interactionPolicy.Check.NO_NEED_TO_PROMPT : interactionPolicy.Check.REQUEST_PROMPT;
    }),
  );
  return policy;
}
