import type { Context } from 'koa';
import type Provider from 'oidc-provider';

/** Hands the interaction's result to the provider and sends the browser on to it. */
export async function finishInteraction(ctx: Context, provider: Provider, result: Record<string, unknown>): Promise<void> {
  const redirectTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(redirectTo);
}

/** How a user proved who they are, as the ID token's `amr` says it: `pwd` (password), `fed` (an upstream, docs/social-login.md). */
export type AuthenticationMethod = 'pwd' | 'fed';

/**
 * Ends the login prompt: the user is signed in to the provider session. Every way of signing in (the
 * password form, an upstream) finishes here, with the methods used; the provider records them as the
 * session's `amr`, which ID tokens carry.
 */
export async function completeLogin(ctx: Context, provider: Provider, login: { accountId: string; amr: AuthenticationMethod[] }): Promise<void> {
  await finishInteraction(ctx, provider, { login: { accountId: login.accountId, amr: login.amr } });
}
