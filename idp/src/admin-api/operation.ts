import type { Middleware, ParameterizedContext } from 'koa';
import { z } from 'zod';
import { callerOf, type ServiceCaller } from '../http/bearer-token.ts';
import { firstIssue, malformed, readJson } from '../http/json-body.ts';

export type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

/** One answer an operation gives on success: its description and body schema (none: no body). */
export interface SuccessResponse {
  description: string;
  schema: z.ZodType;
}

/**
 * One admin API operation: its inputs and answers, declared once. The guard validates requests
 * with these schemas and shapes answers with them; the OpenAPI document is generated from them.
 */
export interface Operation<
  Params extends z.ZodType = z.ZodType,
  Query extends z.ZodType = z.ZodType,
  Body extends z.ZodType = z.ZodType,
> {
  operationId: string;
  method: Method;
  /** The path under /admin/api, with {name} parameters as OpenAPI writes them. */
  path: string;
  tag: 'users' | 'clients' | 'plans' | 'audit' | 'keys';
  summary: string;
  params?: Params;
  query?: Query;
  body?: Body;
  /** Every success status the operation answers, with its body. */
  responses: Record<number, SuccessResponse>;
  /** The problems the operation itself can answer, besides those of every operation (401, 403, 500, 503) and of its inputs. */
  problems: Record<number, string>;
}

export interface OperationInput<Params, Query, Body> {
  params: Params;
  query: Query;
  body: Body;
  caller: ServiceCaller;
}

export interface Answer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export type Handler<O extends Operation> = (
  input: OperationInput<z.output<NonNullable<O['params']>>, z.output<NonNullable<O['query']>>, z.output<NonNullable<O['body']>>>,
) => Promise<Answer>;

/** An operation with its handler: what the router mounts and the document describes. */
export interface Route {
  operation: Operation;
  handler: Handler<Operation>;
}

export function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType>(
  operation: Operation<P, Q, B>,
  handler: (input: OperationInput<z.output<P>, z.output<Q>, z.output<B>>) => Promise<Answer>,
): Route {
  return { operation: operation as unknown as Operation, handler: handler as Handler<Operation> };
}

/** The problems every operation can answer, and those its inputs add. */
export function problemsOf(operation: Operation): Record<number, string> {
  return {
    ...(operation.params || operation.query || operation.body ? { 400: 'the request is malformed: the detail names the field' } : {}),
    401: 'no bearer token, or one that does not verify (WWW-Authenticate: Bearer)',
    403: 'the token does not carry the scope admin',
    ...operation.problems,
    ...(operation.body ? { 413: 'the body is larger than 16 KiB', 415: 'the body is not application/json' } : {}),
    500: 'an unexpected error (its request id is in the detail and the log)',
    503: 'a store the provider needs is unavailable; retry after Retry-After',
  };
}

function parsed<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): z.output<T> {
  if (!schema) return undefined as z.output<T>;
  const result = schema.safeParse(value);
  if (!result.success) throw malformed(firstIssue(result.error, where));
  return result.data;
}

/**
 * The guard of one operation (after the bearer check): path, query and body validated by its schemas,
 * then the handler; its answer must be one the operation declares and is shaped by that schema, so
 * nothing the document does not describe (a secret, say) leaves by accident.
 */
export function guard(routeDefinition: Route): Middleware {
  const { operation, handler } = routeDefinition;
  return async (ctx: ParameterizedContext) => {
    const params = parsed(operation.params, (ctx as unknown as { params: Record<string, string> }).params, 'path');
    const query = parsed(operation.query, { ...ctx.query }, 'query');
    const body = operation.body ? parsed(operation.body, await readJson(ctx as never), 'body') : undefined;
    const answer = await handler({ params, query, body, caller: callerOf(ctx) });
    const declared = operation.responses[answer.status];
    if (!declared) throw new Error(`${operation.operationId} answered ${answer.status}, which it does not declare`);
    ctx.status = answer.status;
    if (answer.headers) ctx.set(answer.headers);
    ctx.body = declared.schema.parse(answer.body);
  };
}

/** /users/{id} as the router writes it: /users/:id. */
export function routerPath(path: string): string {
  return path.replace(/\{([a-z_]+)\}/g, ':$1');
}
