import { createLocalJWKSet, errors as joseErrors, jwtVerify, type JSONWebKeySet, type JWK } from 'jose';
import type { Middleware } from 'koa';
import { ProblemError } from './errors.ts';

/** The caller of one of our service APIs: a client holding a client-credentials access token. */
export interface ServiceCaller {
  clientId: string;
  scopes: ReadonlySet<string>;
}

export interface AccessTokenVerifierOptions {
  issuer: string;
  /** API_RESOURCE: the audience the token must be for. */
  audience: string;
  /** The provider's published keys now (private JWKs: only their public members are used). */
  keys: () => { keys: JWK[] };
}

export class InvalidAccessToken extends Error {
  readonly code = 'ERR_INVALID_ACCESS_TOKEN';
}

const PUBLIC_MEMBERS = ['kty', 'kid', 'alg', 'use', 'n', 'e', 'crv', 'x', 'y'] as const;

function publicKeySet(jwks: { keys: JWK[] }): JSONWebKeySet {
  return {
    keys: jwks.keys.map((key) => Object.fromEntries(PUBLIC_MEMBERS.filter((member) => key[member] !== undefined).map((member) => [member, key[member]])) as JWK),
  };
}

/**
 * Verifies this provider's own JWT access tokens (RFC 9068) in process, against the keys it publishes:
 * signature (RS256, a published key), `typ` at+jwt, iss, aud, exp (5 s of skew), and that the token was
 * issued to a client for itself (client credentials: `sub` is the client), not on behalf of a user.
 */
export function createAccessTokenVerifier(options: AccessTokenVerifierOptions) {
  // One key set per published set: the provider replaces the object when the keys change.
  const keySets = new WeakMap<object, ReturnType<typeof createLocalJWKSet>>();
  const keySetOf = (jwks: { keys: JWK[] }) => {
    let keySet = keySets.get(jwks);
    if (!keySet) keySets.set(jwks, (keySet = createLocalJWKSet(publicKeySet(jwks))));
    return keySet;
  };

  return async function verify(token: string): Promise<ServiceCaller> {
    let payload;
    try {
      ({ payload } = await jwtVerify(token, keySetOf(options.keys()), {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: ['RS256'],
        typ: 'at+jwt',
        requiredClaims: ['exp', 'iat', 'sub', 'client_id'],
        clockTolerance: 5,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JOSEError) throw new InvalidAccessToken(describe(error));
      throw error;
    }
    const clientId = payload['client_id'];
    if (typeof clientId !== 'string' || payload.sub !== clientId) throw new InvalidAccessToken('the token was not issued to a client for itself (client credentials)');
    // RFC 9449 §7.2: a sender-constrained token is never accepted as a plain bearer token.
    if (payload['cnf'] !== undefined) throw new InvalidAccessToken('the token is sender-constrained (DPoP or mTLS); this API takes bearer tokens only');
    const scope = typeof payload['scope'] === 'string' ? payload['scope'] : '';
    return { clientId, scopes: new Set(scope.split(' ').filter(Boolean)) };
  };
}

export type AccessTokenVerifier = ReturnType<typeof createAccessTokenVerifier>;

function describe(error: InstanceType<typeof joseErrors.JOSEError>): string {
  if (error instanceof joseErrors.JWTExpired) return 'the token has expired';
  if (error instanceof joseErrors.JWTClaimValidationFailed) return `the token's ${error.claim} claim is not accepted here`;
  if (error instanceof joseErrors.JWKSNoMatchingKey || error instanceof joseErrors.JWSSignatureVerificationFailed) return 'the token is not signed by this provider';
  return 'the token is malformed or not an access token of this provider';
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/**
 * RFC 6750 for our service APIs: no token is 401 with `WWW-Authenticate: Bearer`; a token that does not
 * verify is 401 with error="invalid_token"; a valid token without any of `scopes` is 403 with
 * error="insufficient_scope". The caller goes to ctx.state.caller for the handler.
 */
export function requireBearer(verify: AccessTokenVerifier, scopes: readonly string[], realm: string): Middleware {
  const challenge = (fields: Record<string, string> = {}) =>
    ['Bearer', [`realm="${realm}"`, ...Object.entries(fields).map(([name, value]) => `${name}="${value.replaceAll('"', "'")}"`)].join(', ')].join(' ');
  return async (ctx, next) => {
    const header = ctx.get('authorization');
    if (header === '') {
      throw new ProblemError(401, 'urn:jobswipe:problem:unauthorized', 'Unauthorized', 'this API needs a bearer access token (RFC 6750)', { headers: { 'WWW-Authenticate': challenge() } });
    }
    const token = BEARER.exec(header)?.[1];
    let caller: ServiceCaller;
    try {
      if (token === undefined) throw new InvalidAccessToken('the Authorization header is not a bearer token');
      caller = await verify(token);
    } catch (error) {
      if (!(error instanceof InvalidAccessToken)) throw error;
      throw new ProblemError(401, 'urn:jobswipe:problem:invalid-token', 'Invalid access token', error.message, {
        headers: { 'WWW-Authenticate': challenge({ error: 'invalid_token', error_description: error.message }) },
      });
    }
    if (!scopes.some((scope) => caller.scopes.has(scope))) {
      const needed = scopes.join(' ');
      throw new ProblemError(403, 'urn:jobswipe:problem:insufficient-scope', 'Insufficient scope', `this call needs the scope ${scopes.join(' or ')}`, {
        headers: { 'WWW-Authenticate': challenge({ error: 'insufficient_scope', scope: needed }) },
      });
    }
    ctx.state['caller'] = caller;
    await next();
  };
}

/** The caller requireBearer admitted. */
export function callerOf(ctx: { state: Record<string, unknown> }): ServiceCaller {
  const caller = ctx.state['caller'] as ServiceCaller | undefined;
  if (!caller) throw new Error('requireBearer must run before the handler');
  return caller;
}
