import type { Context } from 'koa';
import type Provider from 'oidc-provider';

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the login page needs of social login (given by upstreams/routes.ts). */
export interface UpstreamLoginChoices {
  /** The login page's **Continue with <name>** buttons. */
  buttons(uid: string): Promise<Array<{ action: string; name: string }>>;
  /** With `upstream=<id>` in the authorization request, sends the browser to that upstream; false otherwise. */
  followHint(ctx: Context, details: InteractionDetails): Promise<boolean>;
}
