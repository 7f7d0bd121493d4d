import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';

/*
 * The upstreams of the social login tests, real servers on loopback ports:
 * - a bare oidc-provider configured as Google is (discovery, RS256 ID tokens with email,
 *   email_verified and name, client_secret_post, PKCE, `iss` in the authorization response);
 * - a small OAuth 2.0 server shaped like GitHub: /login/oauth/authorize, /login/oauth/access_token,
 *   /user (a numeric id, no verified flag) and /user/emails (the verified addresses).
 * Each shows a page where the test picks the upstream account (`account`) and signs in or cancels.
 */

export interface UpstreamAccount {
  sub: string;
  email: string;
  emailVerified: boolean;
  name: string;
}

export interface RunningUpstream {
  /** The issuer (Google) or base URL (GitHub). */
  url: string;
  /**
   * A misbehaving upstream, for the next authorization request: `nonce` replaces the nonce it was
   * sent, so its ID token carries one we never sent (Google-like only).
   */
  tamper: { nonce?: string | undefined };
  clientId: string;
  clientSecret: string;
  /** The seed entry that configures this upstream at our provider. */
  entry: Record<string, unknown>;
  close(): Promise<void>;
}

function page(title: string, body: string): string {
  return `<!doctype html><html><head><meta charset="utf-8"><title>${title}</title></head><body>${body}</body></html>`;
}

function accountForm(action: string, title: string, hidden: Record<string, string> = {}): string {
  const fields = Object.entries(hidden).map(([name, value]) => `<input type="hidden" name="${name}" value="${value}">`).join('');
  return page(
    title,
    `<h1>${title}</h1><form method="post" action="${action}">${fields}<label for="account">Account</label><input id="account" name="account">` +
      '<button type="submit" name="decision" value="allow">Sign in upstream</button><button type="submit" name="decision" value="cancel">Cancel upstream</button></form>',
  );
}

async function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  let body = '';
  request.setEncoding('utf8');
  for await (const chunk of request) body += chunk as string;
  return new URLSearchParams(body);
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return (server.address() as AddressInfo).port;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A bare oidc-provider as Google: one client, our callback as its redirect URI. */
export async function startGoogleLike(options: { id: string; name: string; callbacks: string[]; accounts: Record<string, UpstreamAccount> }): Promise<RunningUpstream> {
  const clientId = `jobswipe-${randomBytes(4).toString('hex')}.apps.example`;
  const clientSecret = randomBytes(24).toString('base64url');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let provider: Provider | undefined;
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(`upstream error: ${String(error)}`);
    });
  });
  const port = await listen(server);
  const issuer = `http://127.0.0.1:${port}`;
  const configuration: Configuration = {
    clients: [{ client_id: clientId, client_secret: clientSecret, redirect_uris: options.callbacks, token_endpoint_auth_method: 'client_secret_post' }],
    jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'upstream', alg: 'RS256', use: 'sig' }] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Google's ID tokens carry the email and profile claims.
    conformIdTokenClaims: false,
    responseTypes: ['code'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const account = Object.values(options.accounts).find((candidate) => candidate.sub === sub);
      if (!account) return undefined;
      return { accountId: sub, claims: () => ({ sub, email: account.email, email_verified: account.emailVerified, name: account.name }) };
    },
  };
  provider = new Provider(issuer, configuration);
  const callback = provider.callback();
  const tamper: RunningUpstream['tamper'] = {};

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', issuer);
    const interaction = /^\/interaction\/([^/]+)$/.exec(url.pathname);
    if (url.pathname === '/auth' && tamper.nonce !== undefined) {
      url.searchParams.set('nonce', tamper.nonce);
      request.url = `${url.pathname}${url.search}`;
      tamper.nonce = undefined;
    }
    if (!interaction || !provider) {
      await callback(request, response);
      return;
    }
    const details = await provider.interactionDetails(request, response);
    if (request.method === 'GET') {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(accountForm(url.pathname, `Sign in to ${options.name} (upstream)`));
      return;
    }
    const form = await readForm(request);
    if (form.get('decision') !== 'allow') {
      await provider.interactionFinished(request, response, { error: 'access_denied', error_description: 'The user cancelled' }, { mergeWithLastSubmission: false });
      return;
    }
    const account = options.accounts[form.get('account') ?? ''];
    if (!account) throw new Error(`no upstream account ${form.get('account')}`);
    const grant = new provider.Grant({ accountId: account.sub, clientId: String(details.params['client_id']) });
    grant.addOIDCScope(String(details.params['scope']));
    await provider.interactionFinished(request, response, { login: { accountId: account.sub }, consent: { grantId: await grant.save() } }, { mergeWithLastSubmission: false });
  }

  return {
    url: issuer,
    tamper,
    clientId,
    clientSecret,
    entry: { id: options.id, name: options.name, type: 'oidc', issuer, client_id: clientId, client_secret: clientSecret, scopes: 'openid email profile' },
    close: () => close(server),
  };
}

export interface GitHubAccount {
  id: number;
  login: string;
  name: string;
  /** The public profile address (GitHub often gives none). */
  publicEmail: string | null;
  emails: Array<{ email: string; primary: boolean; verified: boolean }>;
}

/** An OAuth 2.0 server shaped like GitHub's, with PKCE and client_secret_post. */
export async function startGitHubLike(options: { id: string; name: string; callbacks: string[]; accounts: Record<string, GitHubAccount> }): Promise<RunningUpstream & { tokenRequests: number }> {
  const clientId = `Iv1.${randomBytes(8).toString('hex')}`;
  const clientSecret = randomBytes(20).toString('hex');
  const codes = new Map<string, { account: GitHubAccount; challenge: string; redirectUri: string }>();
  const tokens = new Map<string, GitHubAccount>();
  const state = { tokenRequests: 0 };
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500, { 'content-type': 'text/plain' });
      response.end(`upstream error: ${String(error)}`);
    });
  });
  const port = await listen(server);
  const base = `http://127.0.0.1:${port}`;
  const json = (response: ServerResponse, status: number, body: unknown) => {
    response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    response.end(JSON.stringify(body));
  };

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? '/', base);
    if (url.pathname === '/login/oauth/authorize' && request.method === 'GET') {
      const params = url.searchParams;
      if (params.get('client_id') !== clientId || !options.callbacks.includes(params.get('redirect_uri') ?? '') || params.get('code_challenge_method') !== 'S256') {
        response.writeHead(400, { 'content-type': 'text/plain' });
        response.end('bad authorization request');
        return;
      }
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end(accountForm('/login/oauth/authorize', `Authorize with ${options.name} (upstream)`, {
        state: params.get('state') ?? '',
        redirect_uri: params.get('redirect_uri') ?? '',
        challenge: params.get('code_challenge') ?? '',
      }));
      return;
    }
    if (url.pathname === '/login/oauth/authorize' && request.method === 'POST') {
      const form = await readForm(request);
      const redirectUri = form.get('redirect_uri') ?? '';
      if (!options.callbacks.includes(redirectUri)) throw new Error('unregistered redirect_uri');
      const back = new URL(redirectUri);
      back.searchParams.set('state', form.get('state') ?? '');
      if (form.get('decision') !== 'allow') {
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'The user has denied your application access.');
      } else {
        const account = options.accounts[form.get('account') ?? ''];
        if (!account) throw new Error(`no upstream account ${form.get('account')}`);
        const code = randomBytes(10).toString('hex');
        codes.set(code, { account, challenge: form.get('challenge') ?? '', redirectUri });
        back.searchParams.set('code', code);
      }
      response.writeHead(302, { location: back.toString() });
      response.end();
      return;
    }
    if (url.pathname === '/login/oauth/access_token' && request.method === 'POST') {
      state.tokenRequests += 1;
      const form = await readForm(request);
      const issued = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      const challenge = createHash('sha256').update(verifier).digest('base64url');
      if (form.get('client_id') !== clientId || form.get('client_secret') !== clientSecret) return json(response, 401, { error: 'invalid_client' });
      if (!issued || issued.redirectUri !== form.get('redirect_uri') || issued.challenge !== challenge) return json(response, 400, { error: 'invalid_grant' });
      const accessToken = `gho_${randomBytes(16).toString('hex')}`;
      tokens.set(accessToken, issued.account);
      return json(response, 200, { access_token: accessToken, token_type: 'bearer', scope: 'read:user,user:email' });
    }
    const bearer = /^(?:Bearer|token) (.+)$/i.exec(request.headers.authorization ?? '')?.[1];
    const account = bearer ? tokens.get(bearer) : undefined;
    if (url.pathname === '/user' || url.pathname === '/user/emails') {
      if (!account) return json(response, 401, { message: 'Requires authentication' });
      if (url.pathname === '/user') return json(response, 200, { id: account.id, login: account.login, name: account.name, email: account.publicEmail });
      return json(response, 200, account.emails.map((entry) => ({ ...entry, visibility: entry.primary ? 'private' : null })));
    }
    json(response, 404, { message: 'Not Found' });
  }

  return {
    url: base,
    tamper: {},
    clientId,
    clientSecret,
    get tokenRequests() {
      return state.tokenRequests;
    },
    entry: {
      id: options.id,
      name: options.name,
      type: 'oauth2',
      authorization_endpoint: `${base}/login/oauth/authorize`,
      token_endpoint: `${base}/login/oauth/access_token`,
      userinfo_endpoint: `${base}/user`,
      emails_endpoint: `${base}/user/emails`,
      client_id: clientId,
      client_secret: clientSecret,
      scopes: 'read:user user:email',
      claims: { sub: 'id', email: 'email', name: 'name' },
    },
    close: () => close(server),
  };
}
