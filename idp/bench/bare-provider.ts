/**
 * The benchmark's baseline: a bare oidc-provider (the version installed for the product), its
 * in-memory adapter, and the product's token settings (idp/src/provider/configuration.ts): RS256
 * everywhere, JWT access tokens for the API resource on client credentials, refresh tokens rotated on
 * use, introspection of a client's own tokens, userinfo. Sign-in is the least that yields codes: a
 * login form whose POST checks a bcrypt hash (as ours does) and grants what was asked in one step.
 *
 * Run as a child process by the harness: `node --import tsx idp/bench/bare-provider.ts`, with
 * BENCH_PORT and BENCH_SEED (the seed file: clients and users with `password_hash`). It prints
 * `listening <port>` on stdout when it serves.
 *
 * With BENCH_DATABASE_URL (target `bare-pg`) it keeps every model in that Postgres database through a
 * minimal adapter (one table, plain parameterised SQL, a pool of 10) and writes one audit row per
 * token response before the response goes out: the least a durable, audited deployment of the same
 * library does on this machine, so the cost of durability can be told apart from ours.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import bcrypt from 'bcrypt';
import Provider, { errors, type Adapter, type AdapterPayload, type ClientMetadata, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import pg from 'pg';
import { LIFETIMES } from '../src/provider/lifetimes.ts';
import { METER_CLIENT, type Seed } from './seed.ts';

const port = Number(process.env['BENCH_PORT']);
const seed = JSON.parse(readFileSync(String(process.env['BENCH_SEED']), 'utf8')) as Seed;
const issuer = `http://127.0.0.1:${port}`;
const API = { resource: 'urn:jobswipe:api', scopes: ['api:read', 'api:write'] };
const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

const users = new Map(seed.users.map((user, index) => [user.email, { ...user, id: `user-${index}` }]));
const usersById = new Map([...users.values()].map((user) => [user.id, user]));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench', alg: 'RS256', use: 'sig' };

const configuration: Configuration = {
  // The usage recorder's scope is ours alone (the bare provider has no usage API).
  clients: seed.clients.filter((client) => client.client_id !== METER_CLIENT).map(({ first_party: _ignored, ...metadata }) => metadata as ClientMetadata),
  jwks: { keys: [signingKey] },
  cookies: {
    keys: [randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  scopes: [...OIDC_SCOPES, ...API.scopes],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  conformIdTokenClaims: false,
  responseTypes: ['code'],
  allowOmittingSingleRegisteredRedirectUri: false,
  rotateRefreshToken: true,
  clientDefaults: {
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'RS256',
  },
  enabledJWA: {
    idTokenSigningAlgValues: ['RS256'],
    userinfoSigningAlgValues: ['RS256'],
    introspectionSigningAlgValues: ['RS256'],
    authorizationSigningAlgValues: ['RS256'],
  },
  ttl: {
    AccessToken: LIFETIMES.accessToken,
    ClientCredentials: LIFETIMES.accessToken,
    AuthorizationCode: LIFETIMES.authorizationCode,
    IdToken: LIFETIMES.idToken,
    RefreshToken: LIFETIMES.refreshToken,
    Interaction: LIFETIMES.interaction,
    Session: LIFETIMES.session,
    Grant: LIFETIMES.grant,
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    introspection: {
      enabled: true,
      async allowedPolicy(_ctx, client, token) {
        return client.clientAuthMethod !== 'none' && (token as { clientId?: string }).clientId === client.clientId;
      },
    },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx: KoaContextWithOIDC) {
        const params = ctx.oidc.params as { grant_type?: string; scope?: string } | undefined;
        if (params?.grant_type === 'client_credentials') return API.resource;
        return (params?.scope ?? '').split(' ').some((scope) => API.scopes.includes(scope)) ? API.resource : undefined;
      },
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(_ctx, indicator) {
        if (indicator !== API.resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
        return { scope: API.scopes.join(' '), audience: API.resource, accessTokenTTL: LIFETIMES.accessToken, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  async findAccount(_ctx, sub) {
    const user = usersById.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => ({ sub, email: user.email, email_verified: true, name: user.name }) };
  },
};

const databaseUrl = process.env['BENCH_DATABASE_URL'];
const pool = databaseUrl ? new pg.Pool({ connectionString: databaseUrl, max: 10 }) : undefined;

const SCHEMA = `
create table if not exists bench_models (
  model text not null, id text not null, payload jsonb not null,
  grant_id text generated always as (payload ->> 'grantId') stored,
  uid text generated always as (payload ->> 'uid') stored,
  user_code text generated always as (payload ->> 'userCode') stored,
  expires_at timestamptz, consumed_at timestamptz,
  primary key (model, id));
create index if not exists bench_models_grant on bench_models (model, grant_id);
create index if not exists bench_models_uid on bench_models (model, uid);
create index if not exists bench_models_user_code on bench_models (model, user_code);
create table if not exists bench_audit (
  id bigserial primary key, occurred_at timestamptz not null default now(),
  event_type text not null, client_id text, account_id text, details jsonb);`;

/** oidc-provider's storage contract over one table: what its documentation's example adapters do. */
function postgresAdapter(db: pg.Pool): new (name: string) => Adapter {
  const live = '(expires_at is null or expires_at > now())';
  return class BenchAdapter implements Adapter {
    readonly name: string;

    constructor(name: string) {
      this.name = name;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn: number) {
      await db.query(
        'insert into bench_models (model, id, payload, expires_at) values ($1, $2, $3, case when $4::float8 > 0 then now() + make_interval(secs => $4::float8) end) ' +
          'on conflict (model, id) do update set payload = excluded.payload, expires_at = excluded.expires_at',
        [this.name, id, JSON.stringify(payload), expiresIn || 0],
      );
    }

    async #findBy(column: 'id' | 'uid' | 'user_code', value: string) {
      const { rows } = await db.query<{ payload: AdapterPayload; consumed_at: Date | null }>(
        `select payload, consumed_at from bench_models where model = $1 and ${column} = $2 and ${live}`,
        [this.name, value],
      );
      const row = rows[0];
      if (!row) return undefined;
      return row.consumed_at ? { ...row.payload, consumed: Math.floor(row.consumed_at.getTime() / 1000) } : row.payload;
    }

    find(id: string) {
      return this.#findBy('id', id);
    }

    findByUid(uid: string) {
      return this.#findBy('uid', uid);
    }

    findByUserCode(userCode: string) {
      return this.#findBy('user_code', userCode);
    }

    async consume(id: string) {
      await db.query('update bench_models set consumed_at = now() where model = $1 and id = $2', [this.name, id]);
    }

    async destroy(id: string) {
      await db.query('delete from bench_models where model = $1 and id = $2', [this.name, id]);
    }

    async revokeByGrantId(grantId: string) {
      await db.query('delete from bench_models where model = $1 and grant_id = $2', [this.name, grantId]);
    }
  };
}

if (pool) {
  await pool.query(SCHEMA);
  configuration.adapter = postgresAdapter(pool);
}

const provider = new Provider(issuer, configuration);

if (pool) {
  // One audit row per token response, written before the response goes out.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.oidc?.route !== 'token' || ctx.status !== 200) return;
    const { client, entities, params } = ctx.oidc;
    await pool.query('insert into bench_audit (event_type, client_id, account_id, details) values ($1, $2, $3, $4)', [
      'token.issued',
      client?.clientId ?? null,
      entities.Account?.accountId ?? null,
      JSON.stringify({ grant_type: params?.['grant_type'] ?? null }),
    ]);
  });
}

// After every provider.use: Koa composes the middleware when the callback is made.
const providerCallback = provider.callback();

const loginPage = (uid: string) =>
  `<!doctype html><title>Sign in</title><form method="post" action="/interaction/${uid}/login">` +
  '<input name="email"><input name="password" type="password"><button>Sign in</button></form>';

async function readBody(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  res.end(body);
}

async function interaction(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET' && !path.endsWith('/login')) {
    send(res, 200, loginPage(details.uid));
    return;
  }
  const form = await readBody(req);
  const user = users.get(form.get('email') ?? '');
  const valid = await bcrypt.compare(form.get('password') ?? '', user?.password_hash ?? '');
  if (!user || !valid) {
    send(res, 401, loginPage(details.uid));
    return;
  }
  const clientId = String(details.params['client_id']);
  const grant = new provider.Grant({ accountId: user.id, clientId });
  const scope = String(details.params['scope'] ?? '');
  grant.addOIDCScope(scope.split(' ').filter((name) => OIDC_SCOPES.includes(name)).join(' '));
  grant.addOIDCClaims(['email', 'email_verified', 'name']);
  const apiScopes = scope.split(' ').filter((name) => API.scopes.includes(name));
  if (apiScopes.length > 0) grant.addResourceScope(API.resource, apiScopes.join(' '));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId: user.id }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0] ?? '/';
  if (path.startsWith('/interaction/')) {
    interaction(req, res, path).catch((error: unknown) => {
      if (!res.headersSent) send(res, 400, String((error as Error).message));
    });
    return;
  }
  void providerCallback(req, res);
});
server.keepAliveTimeout = 60_000;
server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${port}\n`));
const stop = () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
