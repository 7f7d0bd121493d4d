import { z } from 'zod';
import { PROBLEM_CONTENT_TYPE } from '../http/errors.ts';
import { problemsOf, type Operation, type Route } from './operation.ts';
import { problemSchema } from './schemas.ts';

export const ADMIN_API_PATH = '/admin/api';
export const ADMIN_SCOPE = 'admin';

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect): requests as clients send them, answers as we send them. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  return rest;
}

/** Path or query parameters from an object schema, one OpenAPI parameter per property. */
function parameters(schema: z.ZodType | undefined, location: 'path' | 'query'): JsonSchema[] {
  if (!schema) return [];
  const object = jsonSchema(schema, 'input') as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, property]) => {
    const { description, ...propertySchema } = property;
    return {
      name,
      in: location,
      required: location === 'path' || (object.required ?? []).includes(name),
      ...(typeof description === 'string' ? { description } : {}),
      schema: propertySchema,
    };
  });
}

function operationObject(operation: Operation): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, response] of Object.entries(operation.responses)) {
    responses[status] = { description: response.description, content: { 'application/json': { schema: jsonSchema(response.schema, 'output') } } };
  }
  for (const [status, description] of Object.entries(problemsOf(operation))) {
    responses[status] = {
      description,
      ...(status === '401' || status === '403' ? { headers: { 'WWW-Authenticate': { description: 'the Bearer challenge (RFC 6750)', schema: { type: 'string' } } } } : {}),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: { $ref: '#/components/schemas/Problem' } } },
    };
  }
  return {
    operationId: operation.operationId,
    tags: [operation.tag],
    summary: operation.summary,
    parameters: [...parameters(operation.params, 'path'), ...parameters(operation.query, 'query')],
    ...(operation.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(operation.body, 'input') } } } } : {}),
    responses,
  };
}

/**
 * The OpenAPI 3.1 document of the admin API, generated from the operations the router mounts (their
 * zod schemas and declared statuses): it cannot drift from what the API accepts and answers.
 */
export function openApiDocument(routes: Route[], issuer: string): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const { operation } of routes) {
    (paths[`${ADMIN_API_PATH}${operation.path}`] ??= {})[operation.method] = operationObject(operation);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'JobSwipe Identity admin API',
      version: '1',
      description: `Administers users, clients, plans, the audit log and signing keys. Every call needs a client-credentials access token with the scope ${ADMIN_SCOPE} (docs/admin-api.md); errors are RFC 9457 problem details.`,
    },
    servers: [{ url: issuer }],
    security: [{ adminToken: [ADMIN_SCOPE] }],
    tags: ['users', 'clients', 'plans', 'audit', 'keys'].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        adminToken: {
          type: 'oauth2',
          description: `A JWT access token for the API resource, from the client-credentials grant of a client registered with the scope ${ADMIN_SCOPE}, sent as a Bearer token.`,
          flows: { clientCredentials: { tokenUrl: `${issuer}/token`, scopes: { [ADMIN_SCOPE]: 'administer users, clients, plans, the audit log and signing keys' } } },
        },
      },
      schemas: { Problem: jsonSchema(problemSchema, 'output') },
    },
  };
}
