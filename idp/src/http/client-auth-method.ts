import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Middleware } from 'koa';
import type Provider from 'oidc-provider';

/** Endpoints that authenticate clients, all with the client's one registered token_endpoint_auth_method. */
const ENDPOINTS = new Set(['/token', '/token/introspection', '/token/revocation', '/request']);

const SECRET_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
// The provider reads at most this much of a body; we read no more before it does.
const BODY_LIMIT = 56 * 1024;

const replays = new WeakMap<IncomingMessage, Buffer>();

/** The request to hand to the provider: the original, or a replay of the body we had to read. */
export function requestForProvider(req: IncomingMessage): IncomingMessage {
  const body = replays.get(req);
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
  return replay as unknown as IncomingMessage;
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

function basicClientId(header: string): string | undefined {
  const match = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) return undefined;
  try {
    return decodeURIComponent(decoded.slice(0, colon).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}

/**
 * oidc-provider accepts a client secret in the Authorization header or in the body whichever of
 * the two the client registered. We hold clients to the one method they registered, so a secret
 * sent the other way is refused with invalid_client.
 */
export function enforceRegisteredAuthMethod(provider: () => Provider): Middleware {
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || !ENDPOINTS.has(ctx.path)) return next();

    let used: string | undefined;
    let clientId: string | undefined;
    const authorization = ctx.get('authorization');
    if (authorization) {
      clientId = basicClientId(authorization);
      if (clientId) used = 'client_secret_basic';
    } else if (ctx.is('application/x-www-form-urlencoded')) {
      const body = await readBody(ctx.req);
      if (body === 'aborted') {
        // Nobody is left to answer; a 400 for the record, not an error.
        ctx.status = 400;
        ctx.body = { error: 'invalid_request', error_description: 'the request body was not received in full' };
        return;
      }
      if (body === 'too large') {
        ctx.status = 413;
        ctx.body = { error: 'invalid_request', error_description: 'request entity too large' };
        return;
      }
      replays.set(ctx.req, body);
      const params = new URLSearchParams(body.toString('utf8'));
      if (params.has('client_secret')) {
        used = 'client_secret_post';
        clientId = params.get('client_id') ?? undefined;
      }
    }

    if (used && clientId) {
      const client = await provider().Client.find(clientId).catch(() => undefined);
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
