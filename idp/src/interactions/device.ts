import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { RecordEvent } from '../audit/record-event.ts';
import { replaceBodyForProvider } from '../http/client-auth-method.ts';
import { requestOrigin, type ClientIp } from '../http/client-ip.ts';
import { requestScope } from '../http/request-scope.ts';
import { providerRouteOf } from '../http/route-resolution.ts';
import { issueCsrfToken } from '../http/csrf.ts';
import { formGuard } from '../http/form-guard.ts';
import { deviceCodePage } from '../pages/device.ts';
import { RateLimited, type DeviceCodeLimits } from '../security/limits.ts';
import { DEVICE_PATH, EXPIRED_CODE, USED_CODE, WRONG_CODE } from './device-codes.ts';

const userCode = z.string().trim().min(1).max(20);

const codeForm = formGuard(z.object({
  xsrf: z.string().max(200),
  user_code: z.string().max(100),
  confirm: z.literal('yes').optional(),
  abort: z.literal('yes').optional(),
}));

/** The provider's normalisation of user codes (helpers/user_codes.js): upper case, no separators. */
function normalizeUserCode(input: string): string {
  return input.toUpperCase().replace(/\W/g, '');
}

interface DeviceRouteDependencies {
  provider: () => Provider;
  limits: DeviceCodeLimits;
  clientIp: ClientIp;
  recordEvent: RecordEvent;
}

/**
 * The user-code page of the device authorization grant (RFC 8628 §3.3), in front of the provider's
 * own `code_verification` route: every form posted there is validated, CSRF-checked and
 * rate-limited here, and its code looked up, before the provider (which checks its own xsrf field
 * too) confirms the code and starts the usual login and consent interaction.
 */
export function deviceCodeRoutes(deps: DeviceRouteDependencies): Middleware {
  return async (ctx, next) => {
    // Any spelling the provider's router takes for its code_verification route (/DEVICE, /device/).
    if (providerRouteOf(ctx)?.name !== 'code_verification') return next();
    if (ctx.method === 'GET') return showCodeForm(ctx, next);
    if (ctx.method === 'POST') return codeForm(ctx, () => checkCodeForm(ctx, next, deps));
    return next();
  };
}

/**
 * verification_uri_complete carries the code: the provider would submit it at once. The code is
 * only put in the form instead, so the user sees the page and submits it (RFC 8628 §5.4).
 */
async function showCodeForm(ctx: Context, next: () => Promise<unknown>) {
  const given = ctx.query['user_code'];
  if (given !== undefined) {
    const parsed = userCode.safeParse(given);
    if (parsed.success) requestScope(ctx.req).prefilledUserCode = parsed.data;
    ctx.url = DEVICE_PATH;
  }
  return next();
}

async function checkCodeForm(ctx: Context, next: () => Promise<unknown>, deps: DeviceRouteDependencies) {
  const form = codeForm.fieldsOf(ctx);
  const ip = deps.clientIp(ctx.req);
  const origin = requestOrigin(ctx, deps.clientIp);
  const again = (status: number, error: string, headers: Record<string, string> = {}) => {
    ctx.status = status;
    ctx.set({ 'Cache-Control': 'no-store', ...headers });
    ctx.type = 'html';
    ctx.body = deviceCodePage({ action: DEVICE_PATH, xsrf: form.xsrf, csrf: issueCsrfToken(ctx), userCode: form.user_code, error });
  };

  // A point before the code is looked up: parallel guesses get no more lookups than the limit.
  let attempt: Awaited<ReturnType<DeviceCodeLimits['reserve']>>;
  try {
    attempt = await deps.limits.reserve(ip);
  } catch (error) {
    if (!(error instanceof RateLimited)) throw error;
    await deps.recordEvent({ ...origin, type: 'device.rate_limited', outcome: 'failure', details: { retry_after: error.retryAfterSeconds } });
    again(429, error.message, error.headers);
    return;
  }

  const normalized = normalizeUserCode(form.user_code);
  const code = normalized ? await deps.provider().DeviceCode.findByUserCode(normalized, { ignoreExpiration: true }) : undefined;
  const refused = !code ? 'unknown' : code.isExpired ? 'expired' : code.error || code.accountId || code.inFlight ? 'used' : undefined;
  // Only guesses count against the limit: an expired or used code was a real one.
  if (refused !== 'unknown') await attempt.realCode();
  if (refused) {
    await deps.recordEvent({ ...origin, type: 'device.code_rejected', outcome: 'failure', clientId: code?.clientId, details: { reason: refused } });
    again(400, refused === 'unknown' ? WRONG_CODE : refused === 'expired' ? EXPIRED_CODE : USED_CODE);
    return;
  }
  if (form.abort) {
    await deps.recordEvent({ ...origin, type: 'device.denied', outcome: 'failure', clientId: code?.clientId });
  }

  // The provider reads only the fields it knows; it gets exactly those, validated.
  const forProvider = new URLSearchParams({ xsrf: form.xsrf, user_code: form.user_code });
  if (form.confirm) forProvider.set('confirm', 'yes');
  if (form.abort) forProvider.set('abort', 'yes');
  replaceBodyForProvider(ctx.req, forProvider.toString());
  return next();
}
