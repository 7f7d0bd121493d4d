import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import { decodeJwt } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backchannelReceiver, type BackchannelReceiver } from '../../../test/support/backchannel.ts';
import { Browser, hiddenField } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, oauthError, registeredRelyingParty, relyingParty, signIn, webAppClient, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { until } from '../../../test/support/waiting.ts';

/*
 * The admin API (/admin/api) over HTTP on Postgres, with real client-credentials tokens from the
 * running provider. Every answer is checked against the OpenAPI document the server publishes: its
 * status must be one the operation declares, and its body must match the declared schema.
 */

const API = 'urn:jobswipe:api';
const PASSWORD = 'a long and good passphrase';
const service = (client_id: string, scope?: string) => ({ client_id, grant_types: ['client_credentials'], redirect_uris: [], response_types: [], ...(scope ? { scope } : {}) });
const addFormats = addFormatsPlugin as unknown as (ajv: Ajv2020) => Ajv2020;

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

type Document = {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Record<string, unknown> }> }> }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

describe('admin API (postgres)', { timeout: 30_000 }, () => {
  let idp: TestServer;
  let receiver: BackchannelReceiver;
  let document: Document;
  let tokens: Record<'admin' | 'other' | 'usage', string>;
  const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
  const validators = new Map<string, ValidateFunction>();
  /** Which declared status of which operation a real answer has shown: every operation must appear. */
  const seen = new Set<string>();

  const token = async (rp: RelyingParty, scope: string) => (await oidc.clientCredentialsGrant(rp.config, { scope, resource: API })).access_token;

  /** The operation's declared schema for this status and content type, compiled once. */
  function validatorOf(method: string, template: string, status: number, contentType: string): ValidateFunction {
    const key = `${method} ${template} ${status} ${contentType}`;
    let validate = validators.get(key);
    if (!validate) {
      const operation = document.paths[template]?.[method.toLowerCase()];
      expect(operation, `${method} ${template} is in the document`).toBeDefined();
      const response = operation!.responses[String(status)];
      expect(response, `${method} ${template} declares ${status}`).toBeDefined();
      let schema = response!.content?.[contentType]?.schema;
      expect(schema, `${method} ${template} ${status} declares ${contentType}`).toBeDefined();
      if (typeof schema!['$ref'] === 'string') schema = document.components.schemas[String(schema!['$ref']).split('/').at(-1)!];
      validate = ajv.compile(schema!);
      validators.set(key, validate);
    }
    return validate;
  }

  /** A call to the operation at `template` (its {names} filled from `params`), its answer checked against the document. */
  async function call(
    method: string,
    template: string,
    options: { params?: Record<string, string>; token?: string | null; body?: unknown; raw?: string; query?: Record<string, string>; contentType?: string } = {},
  ): Promise<Answer> {
    const path = template.replace(/\{([a-z_]+)\}/g, (_match, name: string) => encodeURIComponent(options.params?.[name] ?? ''));
    const url = new URL(path, idp.issuer);
    for (const [name, value] of Object.entries(options.query ?? {})) url.searchParams.set(name, value);
    const as = options.token === undefined ? tokens.admin : options.token;
    const headers: Record<string, string> = as ? { authorization: `Bearer ${as}` } : {};
    let body: string | undefined;
    if (options.body !== undefined || options.raw !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      body = options.raw ?? JSON.stringify(options.body);
    }
    const response = await fetch(url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = await response.text();
    const answer = { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
    const contentType = (response.headers.get('content-type') ?? '').split(';')[0]!;
    const validate = validatorOf(method, template, answer.status, contentType);
    expect(validate(answer.body), `${method} ${path} ${answer.status}: ${JSON.stringify(validate.errors)} in ${text}`).toBe(true);
    seen.add(`${method.toLowerCase()} ${template}`);
    return answer;
  }

  /** The OAuth error a refused openid-client call carries, from the body or from a WWW-Authenticate challenge (401). */
  async function refusal(promise: Promise<unknown>): Promise<string> {
    try {
      await promise;
    } catch (error) {
      const challenge = (error as { cause?: Array<{ parameters?: { error?: string } }> }).cause;
      if (Array.isArray(challenge)) return String(challenge[0]?.parameters?.error);
      return oauthError(Promise.reject(error as Error));
    }
    throw new Error('expected an OAuth error');
  }

  function expectProblem(answer: Answer, status: number, detail?: RegExp): void {
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(answer.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, detail: expect.any(String) });
    if (detail) expect(answer.body['detail']).toMatch(detail);
  }

  /** The audit events of a type, as the API lists them. */
  async function audited(type: string, query: Record<string, string> = {}) {
    const answer = await call('GET', '/admin/api/audit', { query: { type, limit: '100', ...query } });
    expect(answer.status).toBe(200);
    return answer.body['items'] as Array<{ user_id: string | null; client_id: string | null; details: Record<string, unknown> }>;
  }

  /** Every item of a list, page by page of `limit`, checking each page's size. */
  async function everyPage(template: string, limit: number, query: Record<string, string> = {}, params: Record<string, string> = {}) {
    const items: Array<Record<string, unknown>> = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 50; pages += 1) {
      const answer = await call('GET', template, { params, query: { ...query, limit: String(limit), ...(cursor ? { cursor } : {}) } });
      expect(answer.status).toBe(200);
      const page = answer.body['items'] as Array<Record<string, unknown>>;
      cursor = answer.body['next_cursor'] as string | null;
      expect(page.length).toBeLessThanOrEqual(limit);
      if (cursor !== null) expect(page.length).toBe(limit);
      items.push(...page);
      if (cursor === null) return items;
    }
    throw new Error('more than 50 pages');
  }

  beforeAll(async () => {
    receiver = await backchannelReceiver();
    // admin in API_SCOPES must still not reach clients that did not register it.
    // Sign-up closed: the link of a user created without a password works whatever SIGNUP is.
    idp = await startTestServer('postgres', { API_SCOPES: 'api:read api:write admin', SIGNUP: 'closed' });
    tokens = {
      admin: await token(await registeredRelyingParty(idp, service('ops', 'admin')), 'admin'),
      other: await token(await registeredRelyingParty(idp, service('reports', 'api:read')), 'api:read'),
      usage: await token(await registeredRelyingParty(idp, service('meter', 'usage:read')), 'usage:read'),
    };
    const published = await fetch(new URL('/admin/api/openapi.json', idp.issuer));
    expect(published.status).toBe(200);
    document = (await published.json()) as Document;
  }, 60_000);

  afterAll(async () => {
    await idp?.stop();
    receiver?.server.close();
  });

  it('publishes a valid OpenAPI 3.1 document: the admin token scheme on every operation, 401 and 403 declared everywhere', async () => {
    const result = await new Validator().validate(document as never);
    expect(result, JSON.stringify(result.errors)).toMatchObject({ valid: true });
    const raw = document as unknown as { openapi: string; security: unknown; components: { securitySchemes: Record<string, { type: string; flows: { clientCredentials: { tokenUrl: string; scopes: Record<string, string> } } }> } };
    expect(raw.openapi).toBe('3.1.0');
    expect(raw.security).toEqual([{ adminToken: ['admin'] }]);
    expect(raw.components.securitySchemes['adminToken']).toMatchObject({ type: 'oauth2', flows: { clientCredentials: { tokenUrl: `${idp.issuer}/token`, scopes: { admin: expect.any(String) } } } });
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, operation]) => ({ path, method, operation })));
    expect(operations).toHaveLength(21);
    for (const { operation } of operations) {
      expect(Object.keys(operation.responses)).toEqual(expect.arrayContaining(['401', '403', '500', '503']));
    }
  });

  it('no token: 401 with WWW-Authenticate: Bearer; a token without the scope admin: 403; admin reaches only clients that registered it', async () => {
    const none = await call('GET', '/admin/api/users', { token: null });
    expectProblem(none, 401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="/);
    const bad = await call('POST', '/admin/api/keys/rotate', { token: 'not-a-jwt' });
    expectProblem(bad, 401);
    expect(bad.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    for (const as of [tokens.other, tokens.usage]) {
      const answer = await call('POST', '/admin/api/users', { token: as, body: { email: 'mallory@example.com', name: 'Mallory', password: PASSWORD } });
      expectProblem(answer, 403);
      expect(answer.headers.get('www-authenticate')).toMatch(/error="insufficient_scope", scope="admin"/);
      expectProblem(await call('DELETE', '/admin/api/clients/{client_id}', { token: as, params: { client_id: 'ops' } }), 403);
    }
    // Nothing was done on their behalf.
    expect((await call('GET', '/admin/api/users', { query: { email: 'mallory@' } })).body['items']).toEqual([]);
    // API_SCOPES lists admin, yet a client that did not register it never gets it: refused when it
    // registered other scopes, left out of the token when it registered none.
    const reports = await registeredRelyingParty(idp, service('reports-2', 'api:read'));
    expect(await oauthError(token(reports, 'admin'))).toBe('invalid_scope');
    const unregistered = await token(await registeredRelyingParty(idp, service('anyone')), 'admin');
    expect(decodeJwt(unregistered)['scope'] ?? '').not.toContain('admin');
    expectProblem(await call('GET', '/admin/api/users', { token: unregistered }), 403);
  });

  it('users: create (201), create without a password (the user and a link to set one, used once), get, search by address, and a taken address (409)', async () => {
    const created = await call('POST', '/admin/api/users', { body: { email: 'Alice@Example.com', name: 'Alice', password: PASSWORD } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ email: 'Alice@Example.com', name: 'Alice', email_verified: false, disabled_at: null });
    const id = String(created.body['id']);
    expect(created.headers.get('location')).toBe(`/admin/api/users/${id}`);
    expect((await call('GET', '/admin/api/users/{id}', { params: { id } })).body).toStrictEqual(created.body);

    // Without a password the user is made at once, with a link to set one (SIGNUP=closed here: it works anyway).
    const invited = await call('POST', '/admin/api/users', { body: { email: 'newcomer@example.com', name: 'Newcomer' } });
    expect(invited.status).toBe(201);
    expect(invited.body).toMatchObject({ email: 'newcomer@example.com', name: 'Newcomer', email_verified: false, disabled_at: null });
    const invitedId = String(invited.body['id']);
    expect(invited.headers.get('location')).toBe(`/admin/api/users/${invitedId}`);
    const invitation = invited.body['invitation'] as { url: string; expires_at: string };
    expect(invitation.url).toMatch(new RegExp(`^${idp.issuer}/set-password\\?token=[A-Za-z0-9_-]{43}$`));
    expect(Date.parse(invitation.expires_at) - Date.now()).toBeGreaterThan(7 * 86_400_000 - 60_000);
    expect(Date.parse(invitation.expires_at) - Date.now()).toBeLessThanOrEqual(7 * 86_400_000);
    const listed = (await call('GET', '/admin/api/users', { query: { email: 'newcomer@' } })).body['items'];
    expect(listed).toStrictEqual([{ id: invitedId, email: 'newcomer@example.com', name: 'Newcomer', email_verified: false, created_at: invited.body['created_at'], disabled_at: null }]);
    expect(await audited('admin.user_created', { user: invitedId })).toHaveLength(1);

    // The invitee opens the link, sets a password through the form, and signs in with it; the link works once.
    const invitee = new Browser();
    const form = await invitee.request(invitation.url);
    expect(form.status).toBe(200);
    expect(form.body).toContain('Set your password');
    const fields = { _csrf: hiddenField(form.body, '_csrf'), token: hiddenField(form.body, 'token'), password: PASSWORD };
    expect((await invitee.request(`${idp.issuer}/set-password`, { form: { ...fields, _csrf: 'forged' } })).status).toBe(403);
    const set = await invitee.request(`${idp.issuer}/set-password`, { form: fields });
    expect(set.status).toBe(200);
    expect(set.body).toContain('Your password is set');
    expect((await call('GET', '/admin/api/users/{id}', { params: { id: invitedId } })).body).toMatchObject({ email_verified: true });
    const welcome = await registeredRelyingParty(idp, webAppClient({ client_id: 'welcome' }));
    const request = await authorizationRequest(welcome, 'openid email');
    const callback = await signIn(new Browser(), idp.issuer, request, welcome.redirectUri, { email: 'newcomer@example.com', password: PASSWORD });
    expect(callback.status).toBe(303);
    expect((await exchangeCode(welcome, request, callback.location!)).claims()?.sub).toBe(invitedId);
    expect((await invitee.request(invitation.url)).status).toBe(400);
    const again = await invitee.request(`${idp.issuer}/set-password`, { form: { ...fields, password: 'another good passphrase' } });
    expect(again.status).toBe(400);
    expect(again.body).toContain('already used');
    // A reset link is no set-password link.
    expect((await invitee.request(invitation.url.replace('/set-password', '/reset-password'))).status).toBe(400);

    expectProblem(await call('POST', '/admin/api/users', { body: { email: 'alice@example.com', name: 'Alice Again', password: PASSWORD } }), 409);
    expectProblem(await call('POST', '/admin/api/users', { body: { email: 'alice@example.com', name: 'Alice Again' } }), 409);
    const found = await call('GET', '/admin/api/users', { query: { email: 'ALICE@' } });
    expect((found.body['items'] as Array<{ id: string }>).map((user) => user.id)).toEqual([id]);
    // LIKE wildcards in the search are literal characters.
    expect((await call('GET', '/admin/api/users', { query: { email: '%' } })).body['items']).toEqual([]);
    expectProblem(await call('GET', '/admin/api/users/{id}', { params: { id: '00000000-0000-4000-8000-000000000000' } }), 404);
    expectProblem(await call('GET', '/admin/api/users/{id}', { params: { id: 'not-a-uuid' } }), 404);

    const events = await audited('admin.user_created', { user: id });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ client_id: 'ops', details: { via: 'admin_api', admin_client: 'ops' } });
  });

  it('bad bodies and queries: 400 problems naming the field; not JSON: 415', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ name: 'No Address', password: PASSWORD }, /email/],
      [{ email: 'not-an-address', name: 'X', password: PASSWORD }, /email/],
      [{ email: 'x@example.com', name: '', password: PASSWORD }, /name/],
      [{ email: 'x@example.com', name: 'X', password: PASSWORD, role: 'root' }, /role/],
      [{ email: 'x@example.com', name: 'X', password: 'short' }, /password|characters/],
      [[], /body/],
    ];
    for (const [body, field] of cases) expectProblem(await call('POST', '/admin/api/users', { body }), 400, field);
    expectProblem(await call('POST', '/admin/api/users', { raw: '{"email": ' }), 400);
    expectProblem(await call('POST', '/admin/api/users', { raw: 'email=x', contentType: 'application/x-www-form-urlencoded' }), 415);
    expectProblem(await call('GET', '/admin/api/users', { query: { limit: '101' } }), 400, /limit/);
    expectProblem(await call('GET', '/admin/api/users', { query: { limit: '0' } }), 400, /limit/);
    expectProblem(await call('GET', '/admin/api/users', { query: { cursor: 'not-a-cursor' } }), 400, /cursor/);
    expectProblem(await call('GET', '/admin/api/users', { query: { extra: '1' } }), 400, /extra/);
    expectProblem(await call('GET', '/admin/api/audit', { query: { user: 'nobody' } }), 400, /user/);
    expectProblem(await call('POST', '/admin/api/clients', { body: { client_name: 'Given Secret', client_secret: 'mine' } }), 400, /client_secret/);
    expectProblem(await call('PATCH', '/admin/api/clients/{client_id}', { params: { client_id: 'ops' }, body: {} }), 400, /at least one/);
    expectProblem(await call('PUT', '/admin/api/plans/{id}', { params: { id: 'Bad Id' }, body: { name: 'Bad', desktop_devices: 1 } }), 400, /id/);
    expectProblem(await call('PUT', '/admin/api/users/{id}/plan', { params: { id: '00000000-0000-4000-8000-000000000000' }, body: { plan: 7 } }), 400, /plan/);
  });

  it('paginates with an opaque cursor: every user once, pages of the limit, the last one with next_cursor null', async () => {
    // Rows without a password: five bcrypt hashes would only slow the test down.
    for (let index = 0; index < 5; index += 1) {
      await idp.server.queries.users.insert({ email: `page-${index}@example.com`, name: `Page ${index}`, passwordHash: null, emailVerified: false });
    }
    const all = await everyPage('/admin/api/users', 100);
    const paged = await everyPage('/admin/api/users', 2);
    expect(paged.map((user) => user['id'])).toEqual(all.map((user) => user['id']));
    expect(new Set(paged.map((user) => user['id'])).size).toBe(paged.length);
    expect((await everyPage('/admin/api/users', 2, { email: 'page-' })).map((user) => user['email'])).toHaveLength(5);
  });

  it('plans: create (201) and replace (200) one, list them, put a user on it (audited), read their usage; an unknown plan is 422', async () => {
    const pro = { name: 'Pro', limits: { applications: 500 }, desktop_devices: 3, features: ['auto_apply'] };
    expect((await call('PUT', '/admin/api/plans/{id}', { params: { id: 'pro' }, body: pro })).status).toBe(201);
    const replaced = await call('PUT', '/admin/api/plans/{id}', { params: { id: 'pro' }, body: { ...pro, limits: { applications: 600 } } });
    expect(replaced).toMatchObject({ status: 200, body: { id: 'pro', limits: { applications: 600 } } });
    expect((await everyPage('/admin/api/plans', 1)).map((plan) => plan['id'])).toEqual(['free', 'pro']);

    const user = await call('POST', '/admin/api/users', { body: { email: 'planned@example.com', name: 'Planned', password: PASSWORD } });
    const id = String(user.body['id']);
    expect((await call('PUT', '/admin/api/users/{id}/plan', { params: { id }, body: { plan: 'pro' } })).body).toEqual({ before: 'free', after: 'pro', changed: true });
    const usage = await call('GET', '/admin/api/users/{id}/usage', { params: { id } });
    expect(usage.body['plan']).toMatchObject({ id: 'pro', limits: { applications: 600 } });
    expect(usage.body['meters']).toEqual([expect.objectContaining({ meter: 'applications', used: 0, limit: 600, remaining: 600 })]);
    expectProblem(await call('PUT', '/admin/api/users/{id}/plan', { params: { id }, body: { plan: 'platinum' } }), 422);
    expectProblem(await call('GET', '/admin/api/users/{id}/usage', { params: { id: '00000000-0000-4000-8000-000000000000' } }), 404);
    expect(await audited('plan.changed', { user: id })).toEqual([expect.objectContaining({ client_id: 'ops', details: expect.objectContaining({ from: 'free', to: 'pro', via: 'admin_api' }) })]);
  });

  it('clients: register (secret shown once), read without the secret, change, rotate the secret (old fails, new works), list, disable (grants revoked, tokens refused)', async () => {
    const created = await call('POST', '/admin/api/clients', { body: { client_name: 'Batch', grant_types: ['client_credentials'], scope: 'api:read' } });
    expect(created.status).toBe(201);
    const clientId = String(created.body['client_id']);
    expect(clientId).toMatch(/^[0-9a-f-]{36}$/);
    const firstSecret = String(created.body['client_secret']);
    expect(firstSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const got = await call('GET', '/admin/api/clients/{client_id}', { params: { client_id: clientId } });
    expect(got.body).toMatchObject({ client_id: clientId, client_name: 'Batch', disabled: false });
    expect(JSON.stringify(got.body)).not.toContain(firstSecret);
    expect(got.body).not.toHaveProperty('client_secret');
    expect(got.body).not.toHaveProperty('client_secret_sealed');

    const first = await relyingParty(idp.issuer, { client_id: clientId, client_secret: firstSecret });
    expect(await token(first, 'api:read')).toEqual(expect.any(String));

    const changed = await call('PATCH', '/admin/api/clients/{client_id}', { params: { client_id: clientId }, body: { client_name: 'Nightly batch', scope: 'api:read api:write' } });
    expect(changed.body).toMatchObject({ client_name: 'Nightly batch', scope: 'api:read api:write' });
    expect((await call('GET', '/admin/api/clients/{client_id}', { params: { client_id: clientId } })).body).toMatchObject({ client_name: 'Nightly batch', scope: 'api:read api:write' });

    const rotated = await call('POST', '/admin/api/clients/{client_id}/secret', { params: { client_id: clientId } });
    const secondSecret = String(rotated.body['client_secret']);
    expect(secondSecret).not.toBe(firstSecret);
    expect(await refusal(token(first, 'api:read'))).toBe('invalid_client');
    const second = await relyingParty(idp.issuer, { client_id: clientId, client_secret: secondSecret });
    expect(await token(second, 'api:read')).toEqual(expect.any(String));

    // A given client_id is kept; one in use is 409; metadata the provider refuses is 400.
    const named = await call('POST', '/admin/api/clients', { body: { client_id: 'named-app', client_name: 'Named', redirect_uris: ['https://named.example/callback'] } });
    expect(named).toMatchObject({ status: 201, body: { client_id: 'named-app' } });
    expectProblem(await call('POST', '/admin/api/clients', { body: { client_id: 'named-app', redirect_uris: ['https://named.example/callback'] } }), 409);
    expectProblem(await call('POST', '/admin/api/clients', { body: { redirect_uris: ['not a url'] } }), 400, /redirect_uris/);
    expectProblem(await call('PATCH', '/admin/api/clients/{client_id}', { params: { client_id: 'named-app' }, body: { redirect_uris: ['javascript:alert(1)'] } }), 400);
    expectProblem(await call('GET', '/admin/api/clients/{client_id}', { params: { client_id: 'no-such-client' } }), 404);

    const listed = await everyPage('/admin/api/clients', 2);
    expect(listed.map((client) => client['client_id'])).toEqual(expect.arrayContaining(['ops', 'named-app', clientId]));
    for (const client of listed) expect(client).not.toHaveProperty('client_secret');

    const disabled = await call('DELETE', '/admin/api/clients/{client_id}', { params: { client_id: clientId } });
    expect(disabled.body).toEqual({ client_id: clientId, disabled: true, grants_revoked: 0 });
    expect(await refusal(token(second, 'api:read'))).toBe('invalid_client');
    expect((await call('GET', '/admin/api/clients/{client_id}', { params: { client_id: clientId } })).body).toMatchObject({ disabled: true });
    expectProblem(await call('DELETE', '/admin/api/clients/{client_id}', { params: { client_id: clientId } }), 409);
    expectProblem(await call('POST', '/admin/api/clients/{client_id}/secret', { params: { client_id: clientId } }), 409);
    expectProblem(await call('POST', '/admin/api/clients', { body: { client_id: clientId, grant_types: ['client_credentials'] } }), 409);

    for (const type of ['admin.client_created', 'admin.client_updated', 'admin.client_secret_rotated', 'admin.client_disabled']) {
      expect((await audited(type)).filter((event) => event.client_id === clientId), type).toEqual([expect.objectContaining({ details: expect.objectContaining({ admin_client: 'ops', via: 'admin_api' }) })]);
    }
  });

  it("sessions: lists the user's, ends them all with a logout token delivered to the app, a reset link, then disables the user", async () => {
    const user = await call('POST', '/admin/api/users', { body: { email: 'bob@example.com', name: 'Bob', password: PASSWORD, email_verified: true } });
    const id = String(user.body['id']);
    const app = await call('POST', '/admin/api/clients', {
      body: { client_id: 'web', client_name: 'Web', redirect_uris: ['http://localhost:3000/callback'], backchannel_logout_uri: receiver.url, first_party: true },
    });
    const web = await relyingParty(idp.issuer, { client_id: 'web', client_secret: app.body['client_secret'], redirect_uris: ['http://localhost:3000/callback'] });
    const request = await authorizationRequest(web, 'openid offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, web.redirectUri, { email: 'bob@example.com', password: PASSWORD });
    const signedIn = await exchangeCode(web, request, callback.location!);

    const sessions = await call('GET', '/admin/api/users/{id}/sessions', { params: { id } });
    expect(sessions.body['items']).toEqual([expect.objectContaining({ apps: [{ client_id: 'web', client_name: 'Web' }] })]);
    expect(sessions.body['next_cursor']).toBeNull();

    const before = receiver.tokens.length;
    const ended = await call('DELETE', '/admin/api/users/{id}/sessions', { params: { id } });
    expect(ended.body).toEqual({ sessions_ended: 1, grants_revoked: 1 });
    const logoutToken = await until(() => receiver.tokens[before], 'a logout token at the receiver', 10_000);
    expect(decodeJwt(logoutToken)).toMatchObject({ iss: idp.issuer, aud: 'web', sub: signedIn.claims()!.sub, sid: signedIn.claims()!['sid'] });
    expect(await oauthError(oidc.refreshTokenGrant(web.config, signedIn.refresh_token!))).toBe('invalid_grant');
    expect((await call('GET', '/admin/api/users/{id}/sessions', { params: { id } })).body['items']).toEqual([]);
    expect(await audited('admin.sessions_revoked', { user: id })).toEqual([expect.objectContaining({ client_id: 'ops', details: expect.objectContaining({ sessions: 1, via: 'admin_api' }) })]);

    // Disabling the app revokes the grant Bob gives it next, and the app can no longer use its tokens.
    const again = await authorizationRequest(web, 'openid offline_access');
    const resumed = await exchangeCode(web, again, (await signIn(new Browser(), idp.issuer, again, web.redirectUri, { email: 'bob@example.com', password: PASSWORD })).location!);
    expect(await idp.server.libraries.sessions.connectedApps(id)).toHaveLength(1);
    expect((await call('DELETE', '/admin/api/clients/{client_id}', { params: { client_id: 'web' } })).body).toEqual({ client_id: 'web', disabled: true, grants_revoked: 1 });
    expect(await idp.server.libraries.sessions.connectedApps(id)).toEqual([]);
    expect(await refusal(oidc.refreshTokenGrant(web.config, resumed.refresh_token!))).toBe('invalid_client');

    const link = await call('POST', '/admin/api/users/{id}/reset-link', { params: { id } });
    expect(link.body['url']).toMatch(new RegExp(`^${idp.issuer}/reset-password\\?token=`));
    const lifetime = Date.parse(String(link.body['expires_at'])) - Date.now();
    expect(lifetime).toBeGreaterThan(59 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(60 * 60_000);

    const disabled = await call('POST', '/admin/api/users/{id}/disable', { params: { id } });
    expect(disabled.body).toMatchObject({ already_disabled: false, user: { id, disabled_at: expect.any(String) } });
    expect((await call('POST', '/admin/api/users/{id}/disable', { params: { id } })).body).toMatchObject({ already_disabled: true });
    expectProblem(await call('POST', '/admin/api/users/{id}/reset-link', { params: { id } }), 409);
    expect(await audited('admin.user_disabled', { user: id })).toHaveLength(2);
  });

  it('keys: lists them, rotates (the next key signs), revokes a key by kid; an unknown kid is 404', async () => {
    const before = await everyPage('/admin/api/keys', 1);
    const original = before.find((key) => key['state'] === 'current')!;
    expect(original).toBeDefined();
    const rotated = await call('POST', '/admin/api/keys/rotate');
    expect(rotated.body['events']).toContainEqual({ event: 'key.retired', kid: original['kid'], state: 'retired' });
    const listed = (await call('GET', '/admin/api/keys')).body['items'] as Array<Record<string, unknown>>;
    expect(listed.find((key) => key['kid'] === original['kid'])).toMatchObject({ state: 'retired', retires_at: expect.any(String) });
    const second = listed.find((key) => key['state'] === 'current')!;
    expect(second['kid']).not.toBe(original['kid']);
    // Rotated again, the second key is retired too; it signed nothing this test still presents, so it is the one revoked.
    await call('POST', '/admin/api/keys/rotate');
    const revoked = await call('POST', '/admin/api/keys/{kid}/revoke', { params: { kid: String(second['kid']) } });
    expect(revoked.body['events']).toContainEqual({ event: 'key.revoked', kid: second['kid'], state: 'revoked' });
    const after = (await call('GET', '/admin/api/keys')).body['items'] as Array<Record<string, unknown>>;
    expect(after.find((key) => key['kid'] === second['kid'])).toMatchObject({ state: 'revoked', revoked_at: expect.any(String) });
    expectProblem(await call('POST', '/admin/api/keys/{kid}/revoke', { params: { kid: String(second['kid']) } }), 404);
    expectProblem(await call('POST', '/admin/api/keys/{kid}/revoke', { params: { kid: 'no-such-kid' } }), 404);
    expect((await audited('key.revoked')).at(-1)).toMatchObject({ client_id: 'ops', details: { kid: second['kid'], by: 'administrator', via: 'admin_api', admin_client: 'ops' } });
  });

  it('audit: filtered by type, user and time, paginated in id order', async () => {
    const all = await everyPage('/admin/api/audit', 100, { type: 'admin.user_created' });
    const paged = await everyPage('/admin/api/audit', 2, { type: 'admin.user_created' });
    expect(paged.map((event) => event['id'])).toEqual(all.map((event) => event['id']));
    expect(all.length).toBeGreaterThanOrEqual(3);
    const ids = all.map((event) => Number(event['id']));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
    const future = await call('GET', '/admin/api/audit', { query: { after: new Date(Date.now() + 3_600_000).toISOString() } });
    expect(future.body).toEqual({ items: [], next_cursor: null });
  });

  it('unknown paths under /admin/api are 404 problems, not the provider', async () => {
    const response = await fetch(new URL('/admin/api/nothing-here', idp.issuer), { headers: { authorization: `Bearer ${tokens.admin}` } });
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await response.json()).toMatchObject({ status: 404, detail: expect.stringContaining('openapi.json') });
  });

  it('a known path with another method is a 405 problem naming the methods it answers', async () => {
    const users = await fetch(new URL('/admin/api/users', idp.issuer), { method: 'DELETE', headers: { authorization: `Bearer ${tokens.admin}` } });
    expect(users.status).toBe(405);
    expect(users.headers.get('allow')).toBe('GET, POST');
    expect(users.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await users.json()).toMatchObject({ status: 405, type: 'urn:jobswipe:problem:method-not-allowed' });
    const plan = await fetch(new URL('/admin/api/users/00000000-0000-4000-8000-000000000000/plan', idp.issuer), { method: 'GET', headers: { authorization: `Bearer ${tokens.admin}` } });
    expect(plan.status).toBe(405);
    expect(plan.headers.get('allow')).toBe('PUT');
  });

  it('every operation was called and its answer matched the document', () => {
    const operations = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`));
    expect(operations.filter((operation) => !seen.has(operation))).toEqual([]);
  });
});
