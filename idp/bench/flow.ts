/**
 * The browser side of a sign-in, one step at a time, for both drivers: the setup (fetch, before the
 * measurements) and the sign-in scenario (autocannon's per-connection request loop). Each step takes
 * the previous response and says what the browser sends next.
 */
import { createHash } from 'node:crypto';
import { REDIRECT_URI, WEB_CLIENT } from './seed.ts';

/** PKCE: one verifier for the whole run (the server hashes it on every redemption all the same). */
export const CODE_VERIFIER = 'bench-verifier-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH';
const CODE_CHALLENGE = createHash('sha256').update(CODE_VERIFIER).digest('base64url');

/** The web app's scope: a user session with a refresh token (OpenID Connect asks prompt=consent for offline_access). */
export const SIGN_IN_SCOPE = 'openid email profile offline_access';

export interface Endpoints {
  authorization: string;
  token: string;
  userinfo: string;
  introspection: string;
  jwks: string;
  discovery: string;
}

export interface StepRequest {
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
}

export interface StepResponse {
  status: number;
  /** Header names in lower case; set-cookie as a list. */
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export interface Tokens {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
}

/** Cookies by name; path and expiry are ignored except for deletions (a browser would send them where they belong). */
export class CookieJar {
  private readonly cookies = new Map<string, string>();

  take(setCookie: string | string[] | undefined): void {
    for (const line of [setCookie ?? []].flat()) {
      const [pair = '', ...attributes] = line.split(';');
      const equals = pair.indexOf('=');
      if (equals < 1) continue;
      const name = pair.slice(0, equals).trim();
      const value = pair.slice(equals + 1).trim();
      const expired = attributes.some((attribute) => /^\s*expires=.*1970/i.test(attribute) || /^\s*max-age=0\s*$/i.test(attribute));
      if (value === '' || expired) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  header(): string {
    return [...this.cookies].map(([name, value]) => `${name}=${value}`).join('; ');
  }
}

export const basicAuth = (clientId: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64')}`;

export const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

/** A path (with query) from a Location or form action, absolute or not. */
const pathOf = (location: string) => {
  const url = new URL(location, 'http://placeholder');
  return `${url.pathname}${url.search}`;
};

/** One user's sign-in: an authorization request, the login form, redirects, the code at the token endpoint. */
export class SignIn {
  readonly jar = new CookieJar();
  done: Tokens | undefined;
  /** Why the sign-in stopped, if it failed. */
  failure: string | undefined;
  steps = 0;

  private readonly endpoints: Endpoints;
  private readonly user: { email: string; password: string };
  private readonly webSecret: string;
  /** The X-Forwarded-For this browser's requests carry (each sign-in its own address). */
  private readonly ip: string;

  constructor(endpoints: Endpoints, user: { email: string; password: string }, webSecret: string, ip: string) {
    this.endpoints = endpoints;
    this.user = user;
    this.webSecret = webSecret;
    this.ip = ip;
  }

  private request(method: 'GET' | 'POST', path: string, body?: string, extra: Record<string, string> = {}): StepRequest {
    const headers: Record<string, string> = { 'x-forwarded-for': this.ip, ...extra };
    const cookie = this.jar.header();
    if (cookie) headers['cookie'] = cookie;
    if (body !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    return body === undefined ? { method, path, headers } : { method, path, headers, body };
  }

  first(): StepRequest {
    const params = new URLSearchParams({
      client_id: WEB_CLIENT,
      redirect_uri: REDIRECT_URI,
      response_type: 'code',
      scope: SIGN_IN_SCOPE,
      prompt: 'consent',
      state: `s${this.ip}`,
      code_challenge: CODE_CHALLENGE,
      code_challenge_method: 'S256',
    });
    return this.request('GET', `${this.endpoints.authorization}?${params}`);
  }

  /** The next request after `response`, or undefined when the sign-in is over (see done and failure). */
  next(response: StepResponse): StepRequest | undefined {
    this.steps += 1;
    this.jar.take(response.headers['set-cookie']);
    const location = [response.headers['location'] ?? []].flat()[0];
    if (response.status >= 300 && response.status < 400 && location) {
      if (location.startsWith(REDIRECT_URI)) {
        const code = new URL(location).searchParams.get('code');
        if (!code) return this.fail(`redirected without a code: ${location}`);
        return {
          method: 'POST',
          path: this.endpoints.token,
          headers: { authorization: basicAuth(WEB_CLIENT, this.webSecret), 'content-type': 'application/x-www-form-urlencoded' },
          body: form({ grant_type: 'authorization_code', code, redirect_uri: REDIRECT_URI, code_verifier: CODE_VERIFIER }),
        };
      }
      return this.request('GET', pathOf(location));
    }
    if (response.status === 200 && response.body.includes('name="password"')) {
      const action = /<form[^>]*action="([^"]+)"/.exec(response.body)?.[1];
      if (!action) return this.fail('login page without a form action');
      const csrf = /name="_csrf" value="([^"]+)"/.exec(response.body)?.[1];
      const fields: Record<string, string> = { email: this.user.email, password: this.user.password };
      return this.request('POST', pathOf(action.replaceAll('&amp;', '&')), form(csrf ? { _csrf: csrf, ...fields } : fields));
    }
    if (response.status === 200 && response.body.startsWith('{')) {
      const tokens = JSON.parse(response.body) as Partial<Tokens>;
      if (typeof tokens.access_token !== 'string') return this.fail('token response without an access token');
      this.done = tokens as Tokens;
      return undefined;
    }
    return this.fail(`unexpected ${response.status}: ${response.body.slice(0, 200)}`);
  }

  private fail(reason: string): undefined {
    this.failure = reason;
    return undefined;
  }
}

/** The whole sign-in with fetch (no redirects followed by fetch itself): the setup's way to get tokens. */
export async function signInWithFetch(
  base: string,
  endpoints: Endpoints,
  user: { email: string; password: string },
  webSecret: string,
  ip: string,
): Promise<Tokens> {
  const signIn = new SignIn(endpoints, user, webSecret, ip);
  let request: StepRequest | undefined = signIn.first();
  while (request) {
    if (signIn.steps > 20) throw new Error('sign-in: too many steps');
    const response = await fetch(`${base}${request.path}`, {
      method: request.method,
      headers: request.headers,
      redirect: 'manual',
      ...(request.body === undefined ? {} : { body: request.body }),
    });
    const headers: StepResponse['headers'] = {};
    response.headers.forEach((value, name) => (headers[name] = value));
    headers['set-cookie'] = response.headers.getSetCookie();
    request = signIn.next({ status: response.status, headers, body: await response.text() });
  }
  if (!signIn.done) throw new Error(`sign-in of ${user.email} at ${base} failed: ${signIn.failure ?? 'unknown'}`);
  return signIn.done;
}

/** The endpoints' paths, from the discovery document. */
export async function discover(base: string): Promise<Endpoints> {
  const discovery = '/.well-known/openid-configuration';
  const response = await fetch(`${base}${discovery}`);
  if (!response.ok) throw new Error(`discovery at ${base}: ${response.status}`);
  const document = (await response.json()) as Record<string, string>;
  const path = (name: string) => {
    const value = document[name];
    if (typeof value !== 'string') throw new Error(`discovery at ${base} has no ${name}`);
    return new URL(value).pathname;
  };
  return {
    discovery,
    authorization: path('authorization_endpoint'),
    token: path('token_endpoint'),
    userinfo: path('userinfo_endpoint'),
    introspection: path('introspection_endpoint'),
    jwks: path('jwks_uri'),
  };
}
