import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import { FORM_REFUSED } from '../http/csrf.ts';
import { requestIdOf } from '../http/request-scope.ts';

/** The provider's own refusals of a form whose `xsrf` field is missing, empty, doubled or wrong. */
const XSRF_REFUSED = /xsrf|could not find (?:logout|device form) details/;

/**
 * The logout confirmation form (and the device code form) are the provider's: it checks their
 * `xsrf` field itself and answers 400. A forged post gets our 403 there too. These events name the
 * route the provider resolved, so every path variant it accepts is covered; the refusal happened
 * before the form was acted on, so only the answer changes.
 */
export function answerForgedProviderForms(provider: Provider, refusedPage: (requestId: string | undefined) => string): void {
  const events = provider as unknown as NodeJS.EventEmitter;
  events.on('end_session_confirm.error', (ctx: KoaContextWithOIDC, error: unknown) => {
    if (!isXsrfRefusal(error)) return;
    ctx.status = FORM_REFUSED.status;
    if (ctx.response.is('html')) {
      ctx.body = refusedPage(requestIdOf(ctx.req));
    }
  });
  // The provider has rendered the code page again with a fresh xsrf field: only the status changes.
  events.on('code_verification.error', (ctx: KoaContextWithOIDC, error: unknown) => {
    if (isXsrfRefusal(error)) ctx.status = FORM_REFUSED.status;
  });
}

function isXsrfRefusal(error: unknown): boolean {
  const { name, error_description: description } = error as { name?: unknown; error_description?: unknown };
  return name === 'InvalidRequest' && typeof description === 'string' && XSRF_REFUSED.test(description);
}
