import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { decodeJwt } from 'jose';
import type { Context, Middleware } from 'koa';
import type Provider from 'oidc-provider';
import { requestScope, shareRequestScope, type ClaimedClient } from './request-scope.ts';
import { CLIENT_AUTH_ROUTES, providerRouteOf } from './route-resolution.ts';

export type { ClaimedClient };


const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
// The provider reads at most this much of a body; we read no more before it does.
const BODY_LIMIT = 56 * 1024;

/** The request to hand to the provider: the original, or a replay of the body we had to read. */
export function requestForProvider(req: IncomingMessage): IncomingMessage {
  const body = requestScope(req).bodyForProvider;
  if (!body) return req;
  const replay = new Readable({
    read() {
      this.push(body);
      this.push(null);
    },
  });
  for (const property of ['headers', 'rawHeaders', 'method', 'url', 'httpVersion', 'httpVersionMajor', 'httpVersionMinor', 'socket'] as const) {
    Object.defineProperty(replay, property, { value: req[property], enumerable: true });
  }
  Object.defineProperty(replay, 'connection', { value: req.socket });
  shareRequestScope(req, replay as unknown as IncomingMessage);
  return replay as unknown as IncomingMessage;
}

/**
 * Hands the provider `body` in place of the request's own, which a route before it has read (the
 * device code form, interactions/device.ts). The length header is made to match the new body.
 */
export function replaceBodyForProvider(req: IncomingMessage, body: string): void {
  const bytes = Buffer.from(body, 'utf8');
  req.headers['content-length'] = String(bytes.length);
  delete req.headers['transfer-encoding'];
  requestScope(req).bodyForProvider = bytes;
}

/** The body, 'too large', or 'aborted' when the client went away before sending all of it. */
async function readBody(req: IncomingMessage): Promise<Buffer | 'too large' | 'aborted'> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    // Like the provider, leave the stream open on an early return: the 413 still reaches the client.
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      size += (chunk as Buffer).length;
      if (size > BODY_LIMIT) return 'too large';
      chunks.push(chunk as Buffer);
    }
  } catch {
    return 'aborted';
  }
  return Buffer.concat(chunks);
}

function basicCredentials(header: string): { clientId: string | undefined; secret: string | undefined } {
  const none = { clientId: undefined, secret: undefined };
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match?.[1]) return none;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) return none;
  // As oidc-provider decodes them (RFC 6749 §2.3.1: each part form-urlencoded).
  const part = (value: string) => {
    try {
      return decodeURIComponent(value.replace(/\+/g, '%20'));
    } catch {
      return undefined;
    }
  };
  const clientId = part(decoded.slice(0, colon));
  return clientId === undefined ? none : { clientId, secret: part(decoded.slice(colon + 1)) };
}

/** The `sub` of a client assertion (private_key_jwt, client_secret_jwt), not verified: only a name to count under. */
function assertionSubject(assertion: string): string | undefined {
  try {
    const { sub } = decodeJwt(assertion);
    return typeof sub === 'string' ? sub : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Who a request to a client-authenticating endpoint claims to be, read once per request (the body is
 * kept for the provider to read again), or why its body could not be read.
 */
export function claimedClient(ctx: Context): Promise<ClaimedClient | 'too large' | 'aborted'> {
  const scope = requestScope(ctx.req);
  scope.claimedClient ??= readClaim(ctx);
  return scope.claimedClient;
}

async function readClaim(ctx: Context): Promise<ClaimedClient | 'too large' | 'aborted'> {
  const authorization = ctx.get('authorization');
  if (authorization) {
    const { clientId, secret } = basicCredentials(authorization);
    return { clientId, secretMethod: clientId ? 'client_secret_basic' : undefined, secret };
  }
  if (!ctx.is('application/x-www-form-urlencoded')) return { clientId: undefined, secretMethod: undefined };
  const body = await readBody(ctx.req);
  if (typeof body === 'string') return body;
  requestScope(ctx.req).bodyForProvider = body;
  const params = new URLSearchParams(body.toString('utf8'));
  const assertion = params.get('client_assertion');
  return {
    clientId: params.get('client_id') ?? (assertion ? assertionSubject(assertion) : undefined),
    secretMethod: params.has('client_secret') ? 'client_secret_post' : undefined,
    secret: params.get('client_secret') ?? undefined,
  };
}

/** The claimed client as the provider finds it, looked up once per request for our checks (undefined when unknown or unreadable). */
function claimedClientRecord(ctx: Context, provider: Provider, clientId: string) {
  const scope = requestScope(ctx.req);
  if (scope.claimedClientRecord?.provider !== provider || scope.claimedClientRecord.clientId !== clientId) {
    scope.claimedClientRecord = { provider, clientId, found: provider.Client.find(clientId).catch(() => undefined) };
  }
  return scope.claimedClientRecord.found as Promise<Awaited<ReturnType<Provider['Client']['find']>> | undefined>;
}

interface SecretClient {
  clientAuthMethod?: string;
  clientSecretExpiresAt?: number;
  compareClientSecret(actual: string): boolean;
}

/**
 * Whether the request's secret is its client's current secret, sent the registered way: checked as
 * the provider will check it (its own comparison, on the client it will find), before it does. A
 * request that proves itself needs no failure points held while the provider works (security/token-limits.ts).
 */
export async function provesClientSecret(ctx: Context, provider: Provider, claim: ClaimedClient): Promise<boolean> {
  const { clientId, secretMethod, secret } = claim;
  if (!clientId || !secretMethod || secret === undefined || secret === '') return false;
  const client = (await claimedClientRecord(ctx, provider, clientId)) as unknown as SecretClient | undefined;
  if (!client || client.clientAuthMethod !== secretMethod) return false;
  if (client.clientSecretExpiresAt && client.clientSecretExpiresAt <= Math.floor(Date.now() / 1000)) return false;
  return client.compareClientSecret(secret);
}

/** Answers a request whose body could not be read; true when it did. */
export function refusedUnreadBody(ctx: Context, claim: ClaimedClient | 'too large' | 'aborted'): claim is 'too large' | 'aborted' {
  if (claim === 'aborted') {
    // Nobody is left to answer; a 400 for the record, not an error.
    ctx.status = 400;
    ctx.body = { error: 'invalid_request', error_description: 'the request body was not received in full' };
    return true;
  }
  if (claim === 'too large') {
    ctx.status = 413;
    ctx.body = { error: 'invalid_request', error_description: 'request entity too large' };
    return true;
  }
  return false;
}

/**
 * oidc-provider accepts a client secret in the Authorization header or in the body whichever of
 * the two the client registered. We hold clients to the one method they registered, so a secret
 * sent the other way is refused with invalid_client.
 */
export function enforceRegisteredAuthMethod(provider: () => Provider): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !CLIENT_AUTH_ROUTES.has(providerRouteOf(ctx)?.name ?? '')) return next();

    const claim = await claimedClient(ctx);
    if (refusedUnreadBody(ctx, claim)) return;
    const { clientId, secretMethod: used } = claim;

    if (used && clientId) {
      const client = await claimedClientRecord(ctx, provider(), clientId);
      const registered = client?.clientAuthMethod;
      if (registered && SECRET_METHODS.has(registered) && registered !== used) {
        ctx.status = 401;
        ctx.set('Cache-Control', 'no-store');
        ctx.body = {
          error: 'invalid_client',
          error_description: `client authentication failed: this client must use ${registered}`,
        };
        return;
      }
    }
    return next();
  };
}
