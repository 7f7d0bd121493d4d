import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import type { InteractionFacts } from '../mfa/service.ts';
import { LIFETIMES } from '../provider/lifetimes.ts';
import type { LoginResult } from './sign-in-result.ts';

/** Hands the interaction's result to the provider and sends the browser on to it. */
export async function finishInteraction(ctx: Context, provider: Provider, result: Record<string, unknown>): Promise<void> {
  const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(redirectTo);
}

/**
 * Ends the login prompt: the user is signed in to the provider session. Every way of signing in (the
 * password form, an upstream, a second factor, a passkey) finishes here with its sign-in result
 * (sign-in-result.ts); the provider keeps its `amr` and `acr` in the session, and ID tokens carry them.
 */
export async function completeLogin(ctx: Context, provider: Provider, login: LoginResult): Promise<void> {
  await finishInteraction(ctx, provider, { login });
}

/** The interaction as the sign-in steps see it (a password or an upstream first, then a second factor). */
export function factsOf(details: { uid: string; params: Record<string, unknown> }): InteractionFacts {
  return { uid: details.uid, params: details.params, lifetimeSeconds: LIFETIMES.interaction };
}
