import Router from '@koa/router';
import { KeystoreError } from '@jobswipe/keystore';
import { z } from 'zod';
import type { Actor } from '../audit/administrator.ts';
import { ClientConflict, UnknownClient } from '../clients/administration.ts';
import { ClientRejected, needsSecret } from '../clients/registry.ts';
import type { Libraries } from '../composition.ts';
import { requireBearer, type AccessTokenVerifier, type ServiceCaller } from '../http/bearer-token.ts';
import { ProblemError } from '../http/errors.ts';
import { problemDetails } from '../http/problem-details.ts';
import type { Logger } from '../logger.ts';
import { PlanRejected, UnknownPlan, UnknownUser } from '../plans/service.ts';
import { AccountExists, AccountRejected } from '../users/accounts.ts';
import type { User } from '../users/queries.ts';
import { decodeCursor, pageOf, pageOfList } from './cursor.ts';
import { ADMIN_API_PATH, ADMIN_SCOPE, openApiDocument } from './openapi.ts';
import { guard, route, routerPath, type Route } from './operation.ts';
import * as schemas from './schemas.ts';

export interface AdminApiDependencies {
  libraries: Pick<Libraries, 'users' | 'sessions' | 'plans' | 'clientAdministration' | 'keys' | 'auditEvents'>;
  verifyAccessToken: AccessTokenVerifier;
  log: Logger;
  issuer: string;
}

const problem = (status: number, name: string, title: string, detail: string) => new ProblemError(status, `urn:jobswipe:problem:${name}`, title, detail);
const notFound = (detail: string) => problem(404, 'not-found', 'Not Found', detail);
const conflict = (detail: string) => problem(409, 'conflict', 'Conflict', detail);
const rejected = (detail: string) => problem(400, 'rejected', 'Rejected', detail);

/** The library's refusals as problems; anything else as it is (the problem middleware answers 500 or 503). */
function asProblem(error: unknown): unknown {
  if (error instanceof UnknownUser) return notFound('no user has this id');
  if (error instanceof UnknownClient) return notFound(error.message);
  if (error instanceof AccountExists || error instanceof ClientConflict) return conflict(error.message);
  if (error instanceof UnknownPlan) return problem(422, 'unknown-plan', 'Unknown plan', error.message);
  if (error instanceof AccountRejected || error instanceof ClientRejected) return rejected(error.message);
  if (error instanceof PlanRejected) {
    return new ProblemError(503, 'urn:jobswipe:problem:plan-not-configured', 'Service Unavailable', "the user's plan is not configured on this provider; try again later", { headers: { 'Retry-After': '60' } });
  }
  if (error instanceof KeystoreError && error.code === 'ERR_KEY_NOT_FOUND') return notFound(error.message);
  if (error instanceof KeystoreError && error.code === 'ERR_KEY_STATE') return conflict(error.message);
  return error;
}

async function refusing<T>(action: Promise<T>): Promise<T> {
  try {
    return await action;
  } catch (error) {
    throw asProblem(error);
  }
}

const actorOf = (caller: ServiceCaller): Actor => ({ kind: 'client', clientId: caller.clientId });
const iso = (date: Date | null) => (date ? date.toISOString() : null);
const uuidKey = z.string().max(200);

function userView(user: User) {
  return { id: user.id, email: user.email, name: user.name, email_verified: user.email_verified, created_at: user.created_at.toISOString(), disabled_at: iso(user.disabled_at) };
}

const NOT_FOUND_USER = { 404: 'no user has this id' };

/** Every admin API operation, each with its schemas, statuses and handler (the document lists them in this order). */
function adminRoutes({ libraries }: AdminApiDependencies): Route[] {
  const { users, sessions, plans, clientAdministration: clients, keys, auditEvents } = libraries;

  async function userOf(id: string): Promise<User> {
    const user = await users.find(id);
    if (!user) throw notFound('no user has this id');
    return user;
  }

  return [
    // Users
    route(
      { operationId: 'listUsers', method: 'get', path: '/users', tag: 'users', summary: 'Users by id, or those whose address starts with `email`', query: schemas.userListQuery, responses: { 200: { description: 'a page of users', schema: schemas.userListSchema } }, problems: {} },
      async ({ query }) => {
        const after = decodeCursor(query.cursor, uuidKey);
        const rows = await users.page({ emailPrefix: query.email, after, limit: query.limit + 1 });
        return { status: 200, body: pageOf(rows, query.limit, (user) => user.id, userView) };
      },
    ),
    route(
      {
        operationId: 'createUser',
        method: 'post',
        path: '/users',
        tag: 'users',
        summary: 'Creates a user; without a password, the answer carries a link with which the user sets one',
        body: schemas.newUserSchema,
        responses: { 201: { description: 'the user created, with the invitation link when no password was given', schema: z.union([schemas.invitedUserSchema, schemas.userSchema]) } },
        problems: { 409: 'a user has this address already' },
      },
      async ({ body, caller }) => {
        if (body.password === undefined) {
          const { user, invitation } = await refusing(users.createWithPasswordLink({ email: body.email, name: body.name, emailVerified: body.email_verified }, actorOf(caller)));
          const view = { ...userView(user), invitation: { url: invitation.url, expires_at: invitation.expiresAt.toISOString() } };
          return { status: 201, body: view, headers: { Location: `${ADMIN_API_PATH}/users/${user.id}` } };
        }
        const user = await refusing(users.create({ email: body.email, name: body.name, password: body.password, emailVerified: body.email_verified }, actorOf(caller)));
        return { status: 201, body: userView(user), headers: { Location: `${ADMIN_API_PATH}/users/${user.id}` } };
      },
    ),
    route(
      { operationId: 'getUser', method: 'get', path: '/users/{id}', tag: 'users', summary: 'One user', params: schemas.userIdParams, responses: { 200: { description: 'the user', schema: schemas.userSchema } }, problems: NOT_FOUND_USER },
      async ({ params }) => ({ status: 200, body: userView(await userOf(params.id)) }),
    ),
    route(
      {
        operationId: 'disableUser',
        method: 'post',
        path: '/users/{id}/disable',
        tag: 'users',
        summary: 'The user can no longer sign in; every session and grant ends (back-channel logout)',
        params: schemas.userIdParams,
        responses: { 200: { description: 'the user, disabled', schema: schemas.disabledUserSchema } },
        problems: NOT_FOUND_USER,
      },
      async ({ params, caller }) => {
        const user = await userOf(params.id);
        const { alreadyDisabled, outcome } = await users.disable(user, actorOf(caller));
        return { status: 200, body: { user: userView(await userOf(user.id)), already_disabled: alreadyDisabled, sessions_ended: outcome.sessionsEnded, grants_revoked: outcome.grantsRevoked } };
      },
    ),
    route(
      {
        operationId: 'issueResetLink',
        method: 'post',
        path: '/users/{id}/reset-link',
        tag: 'users',
        summary: 'A password reset link for the user (works once, 1 hour)',
        params: schemas.userIdParams,
        responses: { 200: { description: 'the link', schema: schemas.linkSchema } },
        problems: { ...NOT_FOUND_USER, 409: 'the user is disabled' },
      },
      async ({ params, caller }) => {
        const user = await userOf(params.id);
        if (user.disabled_at) throw conflict('the user is disabled; a reset link would not work');
        const link = await refusing(users.issueResetLink(user, actorOf(caller)));
        return { status: 200, body: { url: link.url, expires_at: link.expiresAt.toISOString() } };
      },
    ),
    route(
      { operationId: 'listSessions', method: 'get', path: '/users/{id}/sessions', tag: 'users', summary: "The user's live sessions", params: schemas.userIdParams, query: schemas.pageOnlyQuery, responses: { 200: { description: 'a page of sessions', schema: schemas.sessionListSchema } }, problems: NOT_FOUND_USER },
      async ({ params, query }) => {
        const user = await userOf(params.id);
        const all = await sessions.list(user.id);
        const view = (session: (typeof all)[number]) => ({
          id: session.uid,
          started_at: session.startedAt.toISOString(),
          last_seen_at: session.lastSeenAt.toISOString(),
          expires_at: session.expiresAt.toISOString(),
          device: session.device,
          user_agent: session.userAgent,
          ip: session.ip,
          apps: session.apps.map((app) => ({ client_id: app.clientId, client_name: app.clientName })),
        });
        return { status: 200, body: pageOfList(all, decodeCursor(query.cursor, z.string()), query.limit, (session) => session.uid, view) };
      },
    ),
    route(
      {
        operationId: 'endSessions',
        method: 'delete',
        path: '/users/{id}/sessions',
        tag: 'users',
        summary: 'Ends every session and grant of the user; each app is told by back-channel logout',
        params: schemas.userIdParams,
        responses: { 200: { description: 'what was ended', schema: schemas.endedSessionsSchema } },
        problems: NOT_FOUND_USER,
      },
      async ({ params, caller }) => {
        const outcome = await users.endSessions(await userOf(params.id), undefined, actorOf(caller));
        return { status: 200, body: { sessions_ended: outcome.sessionsEnded, grants_revoked: outcome.grantsRevoked } };
      },
    ),
    route(
      {
        operationId: 'setUserPlan',
        method: 'put',
        path: '/users/{id}/plan',
        tag: 'users',
        summary: 'Puts the user on a plan, at once',
        params: schemas.userIdParams,
        body: schemas.setPlanSchema,
        responses: { 200: { description: 'the plan before and after', schema: schemas.planChangeSchema } },
        problems: { ...NOT_FOUND_USER, 422: 'no plan has this id' },
      },
      async ({ params, body, caller }) => {
        const user = await userOf(params.id);
        return { status: 200, body: await refusing(plans.setPlan(user.id, body.plan, actorOf(caller))) };
      },
    ),
    route(
      { operationId: 'getUserUsage', method: 'get', path: '/users/{id}/usage', tag: 'users', summary: "The user's plan and usage this period", params: schemas.userIdParams, responses: { 200: { description: 'plan and meters', schema: schemas.usageSchema } }, problems: NOT_FOUND_USER },
      async ({ params }) => {
        const user = await userOf(params.id);
        const [plan, meters] = await refusing(Promise.all([plans.planOf(user.id), plans.usageOf(user.id)]));
        return { status: 200, body: { plan, meters } };
      },
    ),

    // Clients
    route(
      { operationId: 'listClients', method: 'get', path: '/clients', tag: 'clients', summary: 'Clients by client_id, enabled and disabled, without secrets', query: schemas.pageOnlyQuery, responses: { 200: { description: 'a page of clients', schema: schemas.clientListSchema } }, problems: {} },
      async ({ query }) => {
        const rows = await clients.page({ after: decodeCursor(query.cursor, z.string()), limit: query.limit + 1 });
        return { status: 200, body: pageOf(rows, query.limit, (client) => client.client_id, (client) => client) };
      },
    ),
    route(
      {
        operationId: 'createClient',
        method: 'post',
        path: '/clients',
        tag: 'clients',
        summary: 'Registers a client from RFC 7591 metadata; a generated secret is shown once',
        body: schemas.newClientSchema,
        responses: { 201: { description: 'the client, with its generated secret (when it authenticates with one)', schema: schemas.createdClientSchema } },
        problems: { 409: 'a client has this client_id already' },
      },
      async ({ body, caller }) => {
        const metadata = await refusing(clients.create(body, actorOf(caller)));
        const stored = await clients.find(metadata.client_id);
        const secret = needsSecret(metadata) && typeof metadata['client_secret'] === 'string' ? { client_secret: metadata['client_secret'] } : {};
        return { status: 201, body: { ...stored, ...secret }, headers: { Location: `${ADMIN_API_PATH}/clients/${encodeURIComponent(metadata.client_id)}` } };
      },
    ),
    route(
      { operationId: 'getClient', method: 'get', path: '/clients/{client_id}', tag: 'clients', summary: "A client's metadata, never its secret", params: schemas.clientIdParams, responses: { 200: { description: 'the client', schema: schemas.clientSchema } }, problems: { 404: 'no client has this client_id' } },
      async ({ params }) => ({ status: 200, body: await refusing(clients.find(params.client_id)) }),
    ),
    route(
      {
        operationId: 'updateClient',
        method: 'patch',
        path: '/clients/{client_id}',
        tag: 'clients',
        summary: 'Changes redirect and logout URIs, name or scopes',
        params: schemas.clientIdParams,
        body: schemas.clientChangesSchema,
        responses: { 200: { description: 'the client as it is now', schema: schemas.clientSchema } },
        problems: { 404: 'no client has this client_id', 409: 'the client is disabled' },
      },
      async ({ params, body, caller }) => ({ status: 200, body: await refusing(clients.update(params.client_id, body, actorOf(caller))) }),
    ),
    route(
      {
        operationId: 'rotateClientSecret',
        method: 'post',
        path: '/clients/{client_id}/secret',
        tag: 'clients',
        summary: 'A new secret, shown once; the old one stops working',
        params: schemas.clientIdParams,
        responses: { 200: { description: 'the new secret', schema: schemas.rotatedSecretSchema } },
        problems: { 404: 'no client has this client_id', 409: 'the client is disabled or does not authenticate with a secret' },
      },
      async ({ params, caller }) => ({ status: 200, body: { client_id: params.client_id, client_secret: await refusing(clients.rotateSecret(params.client_id, actorOf(caller))) } }),
    ),
    route(
      {
        operationId: 'disableClient',
        method: 'delete',
        path: '/clients/{client_id}',
        tag: 'clients',
        summary: 'Disables the client and revokes its grants (and their tokens); its id is never reused',
        params: schemas.clientIdParams,
        responses: { 200: { description: 'the client, disabled', schema: schemas.disabledClientSchema } },
        problems: { 404: 'no client has this client_id', 409: 'the client is disabled already' },
      },
      async ({ params, caller }) => {
        const { grantsRevoked } = await refusing(clients.disable(params.client_id, actorOf(caller)));
        return { status: 200, body: { client_id: params.client_id, disabled: true, grants_revoked: grantsRevoked } };
      },
    ),

    // Plans
    route(
      { operationId: 'listPlans', method: 'get', path: '/plans', tag: 'plans', summary: 'Every plan, by id', query: schemas.pageOnlyQuery, responses: { 200: { description: 'a page of plans', schema: schemas.planListSchema } }, problems: {} },
      async ({ query }) => ({ status: 200, body: pageOfList(await plans.list(), decodeCursor(query.cursor, z.string()), query.limit, (plan) => plan.id, (plan) => plan) }),
    ),
    route(
      {
        operationId: 'savePlan',
        method: 'put',
        path: '/plans/{id}',
        tag: 'plans',
        summary: 'Creates or replaces a plan; users on it get the new limits at once',
        params: schemas.planIdParams,
        body: schemas.planBodySchema,
        responses: { 200: { description: 'the plan, replaced (or unchanged)', schema: schemas.planViewSchema }, 201: { description: 'the plan, created', schema: schemas.planViewSchema } },
        problems: {},
      },
      async ({ params, body, caller }) => {
        // The body passed the same plan schema; a refusal here is the library's own check, so a 400.
        const { plan, change } = await refusing(plans.save({ ...body, id: params.id }, actorOf(caller)).catch((error: unknown) => {
          throw error instanceof PlanRejected ? rejected(error.message) : error;
        }));
        return { status: change === 'created' ? 201 : 200, body: plan };
      },
    ),

    // Audit
    route(
      { operationId: 'listAuditEvents', method: 'get', path: '/audit', tag: 'audit', summary: 'Audit events in id order, by time, type and user', query: schemas.auditQuery, responses: { 200: { description: 'a page of events', schema: schemas.auditListSchema } }, problems: {} },
      async ({ query }) => {
        const afterId = decodeCursor(query.cursor, z.number().int().min(0));
        const rows = await auditEvents.search({ after: query.after === undefined ? undefined : new Date(query.after), type: query.type, user: query.user, afterId, limit: query.limit + 1 });
        const view = (row: (typeof rows)[number]) => ({
          id: String(row.id),
          occurred_at: row.occurred_at.toISOString(),
          type: row.event_type,
          outcome: row.outcome,
          user_id: row.user_id,
          client_id: row.client_id,
          session_id: row.session_id,
          ip: row.ip,
          user_agent: row.user_agent,
          details: row.details,
        });
        return { status: 200, body: pageOf(rows, query.limit, (row) => Number(row.id), view) };
      },
    ),

    // Keys
    route(
      { operationId: 'listKeys', method: 'get', path: '/keys', tag: 'keys', summary: 'Signing keys with their state and dates', query: schemas.pageOnlyQuery, responses: { 200: { description: 'a page of keys', schema: schemas.keyListSchema } }, problems: {} },
      async ({ query }) => {
        const view = (key: Awaited<ReturnType<typeof keys.list>>[number]) => ({
          kid: key.kid,
          alg: key.alg,
          state: key.state,
          created_at: key.createdAt.toISOString(),
          activates_at: iso(key.activatesAt),
          retires_at: iso(key.retiresAt),
          revoked_at: iso(key.revokedAt),
        });
        return { status: 200, body: pageOfList(await keys.list(), decodeCursor(query.cursor, z.string()), query.limit, (key) => key.kid, view) };
      },
    ),
    route(
      { operationId: 'rotateKeys', method: 'post', path: '/keys/rotate', tag: 'keys', summary: 'The next key signs from now on (servers pick it up within KEYSTORE_POLL_SECONDS)', responses: { 200: { description: 'what changed', schema: schemas.keyEventsSchema } }, problems: {} },
      async ({ caller }) => ({ status: 200, body: { events: keyEvents(await keys.rotate(actorOf(caller))) } }),
    ),
    route(
      {
        operationId: 'revokeKey',
        method: 'post',
        path: '/keys/{kid}/revoke',
        tag: 'keys',
        summary: 'Withdraws a key from the JWKS for good (a leaked key)',
        params: schemas.kidParams,
        responses: { 200: { description: 'what changed', schema: schemas.keyEventsSchema } },
        problems: { 404: 'no published key has this kid' },
      },
      async ({ params, caller }) => ({ status: 200, body: { events: keyEvents(await refusing(keys.revoke(params.kid, actorOf(caller)))) } }),
    ),
  ];
}

/** An operation's path (`/users/{id}/plan`) as a pattern over the path after the prefix; a parameter is one segment. */
function pathPattern(path: string): RegExp {
  const segments = path.split('/').map((segment) => (/^\{[^}]+\}$/.test(segment) ? '[^/]+' : segment.replace(/[.*+?^$()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${segments.join('/')}$`);
}

function keyEvents(events: Array<{ event: string; kid: string; state?: string | undefined }>) {
  return events.map((event) => ({ event: event.event, kid: event.kid, ...(event.state ? { state: event.state } : {}) }));
}

/**
 * The admin API (docs/admin-api.md) under /admin/api: each operation runs the problem-details
 * wrapper, the bearer check for the scope admin, then its guard (validation, handler, declared
 * answer). The OpenAPI document is public: it describes the API and holds nothing secret.
 */
export function adminApiRoutes(deps: AdminApiDependencies): Router {
  const router = new Router();
  const answerProblems = problemDetails(deps.log);
  const admin = requireBearer(deps.verifyAccessToken, [ADMIN_SCOPE], deps.issuer);
  const routes = adminRoutes(deps);
  const document = openApiDocument(routes, deps.issuer);

  router.get(`${ADMIN_API_PATH}/openapi.json`, answerProblems, (ctx) => {
    ctx.body = document;
  });
  for (const definition of routes) {
    router[definition.operation.method](`${ADMIN_API_PATH}${routerPath(definition.operation.path)}`, answerProblems, admin, guard(definition));
  }
  // Anything else under the prefix is answered here, as a problem, rather than by the provider: a
  // known path with another method is 405 with Allow (RFC 9110 §15.5.6), an unknown one 404.
  const paths = [{ pattern: /^\/openapi\.json$/, method: 'GET' }, ...routes.map(({ operation }) => ({ pattern: pathPattern(operation.path), method: operation.method.toUpperCase() }))];
  router.all(`${ADMIN_API_PATH}{/*rest}`, answerProblems, (ctx) => {
    const rest = ctx.path.slice(ADMIN_API_PATH.length);
    const allowed = [...new Set(paths.filter(({ pattern }) => pattern.test(rest)).map(({ method }) => method))];
    if (allowed.length > 0) {
      ctx.set('Allow', allowed.join(', '));
      throw problem(405, 'method-not-allowed', 'Method Not Allowed', `${ctx.method} is not an operation on this path; it answers ${allowed.join(', ')}`);
    }
    throw problem(404, 'not-found', 'Not Found', 'the admin API has no such operation (see /admin/api/openapi.json)');
  });
  return router;
}
