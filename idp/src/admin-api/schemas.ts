import { z } from 'zod';
import { planIdSchema, planSchema } from '../plans/schemas.ts';
import { emailSchema, nameSchema } from '../users/accounts.ts';
import { pageQuery } from './cursor.ts';

/*
 * The admin API's requests and answers (docs/admin-api.md), one schema each: the guard validates and
 * shapes with them, and GET /admin/api/openapi.json is generated from them.
 */

const instant = z.iso.datetime({ offset: true });
const list = <T extends z.ZodType>(item: T) =>
  z.object({
    items: z.array(item),
    next_cursor: z.string().nullable().describe('pass as `cursor` for the next page; null on the last page'),
  });

/** RFC 9457 problem details, as every error is answered. */
export const problemSchema = z.looseObject({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string(),
  instance: z.string().optional(),
});

// Users

export const userIdParams = z.object({ id: z.string().max(200) });

export const userSchema = z.object({
  id: z.string(),
  email: z.string(),
  name: z.string(),
  email_verified: z.boolean(),
  created_at: instant,
  disabled_at: instant.nullable(),
});

export const userListQuery = z.strictObject({
  email: z.string().min(1).max(320).optional().describe('users whose address starts with this (any case)'),
  ...pageQuery,
});
export const userListSchema = list(userSchema);

export const newUserSchema = z.strictObject({
  email: emailSchema,
  name: nameSchema.pipe(z.string().min(1, 'is required')),
  password: z.string().min(1).max(1024).optional().describe('without one, the user has no password yet: the answer carries a link with which they set one'),
  email_verified: z.boolean().default(false),
});

export const linkSchema = z.object({ url: z.string(), expires_at: instant });

export const invitedUserSchema = userSchema.extend({
  invitation: linkSchema.describe('the link with which the user sets a password (works once, 7 days; setting it verifies the address)'),
});

export const disabledUserSchema = z.object({
  user: userSchema,
  already_disabled: z.boolean(),
  sessions_ended: z.number().int(),
  grants_revoked: z.number().int(),
});

export const sessionSchema = z.object({
  id: z.string().describe("the provider session's uid"),
  started_at: instant,
  last_seen_at: instant,
  expires_at: instant,
  device: z.string(),
  user_agent: z.string(),
  ip: z.string(),
  apps: z.array(z.object({ client_id: z.string(), client_name: z.string() })),
});
export const sessionListSchema = list(sessionSchema);
export const pageOnlyQuery = z.strictObject(pageQuery);

export const endedSessionsSchema = z.object({ sessions_ended: z.number().int(), grants_revoked: z.number().int() });

export const setPlanSchema = z.strictObject({ plan: planIdSchema });
export const planChangeSchema = z.object({ before: z.string(), after: z.string(), changed: z.boolean() });

const meterUsageSchema = z.object({
  meter: z.string(),
  used: z.number().int(),
  limit: z.number().int(),
  remaining: z.number().int(),
  period_start: instant,
  period_end: instant,
});

// Plans

export const planViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  limits: z.record(z.string(), z.number().int()),
  desktop_devices: z.number().int(),
  features: z.array(z.string()),
});
export const planListSchema = list(planViewSchema);
export const planIdParams = z.object({ id: planIdSchema });
export const planBodySchema = planSchema.omit({ id: true });

export const usageSchema = z.object({ plan: planViewSchema, meters: z.array(meterUsageSchema) });

// Clients

const uris = z.array(z.string().max(2000)).max(50);
const clientIdValue = z.string().regex(/^[\x21-\x7e]{1,200}$/, 'must be 1-200 printable ASCII characters without spaces');

export const clientIdParams = z.object({ client_id: z.string().max(200) });

/** A client's metadata as stored (RFC 7591 names), never a secret. */
export const clientSchema = z.looseObject({
  client_id: z.string(),
  disabled: z.boolean(),
  client_name: z.string().optional(),
  redirect_uris: z.array(z.string()).optional(),
  post_logout_redirect_uris: z.array(z.string()).optional(),
  backchannel_logout_uri: z.string().optional(),
  grant_types: z.array(z.string()).optional(),
  response_types: z.array(z.string()).optional(),
  scope: z.string().optional(),
  token_endpoint_auth_method: z.string().optional(),
  application_type: z.string().optional(),
  first_party: z.boolean().optional(),
  client_secret: z.never().optional().describe('never shown here'),
  client_secret_sealed: z.never().optional(),
});
export const clientListSchema = list(clientSchema);

/** RFC 7591 client metadata; anything else the provider's own validation accepts or refuses. */
export const newClientSchema = z.looseObject({
  client_id: clientIdValue.optional().describe('generated (a UUID) unless given'),
  client_name: z.string().min(1).max(200).optional(),
  redirect_uris: uris.optional(),
  post_logout_redirect_uris: uris.optional(),
  backchannel_logout_uri: z.string().max(2000).optional(),
  grant_types: z.array(z.string()).max(10).optional(),
  response_types: z.array(z.string()).max(10).optional(),
  scope: z.string().max(2000).optional(),
  token_endpoint_auth_method: z.string().optional(),
  application_type: z.enum(['web', 'native']).optional(),
  first_party: z.boolean().optional(),
  client_secret: z.never().optional().describe('secrets are generated, never given'),
});

export const createdClientSchema = clientSchema.extend({
  client_secret: z.string().optional().describe('the generated secret, shown only in this answer'),
});

export const clientChangesSchema = z
  .strictObject({
    client_name: z.string().min(1).max(200).optional(),
    redirect_uris: uris.optional(),
    post_logout_redirect_uris: uris.optional(),
    backchannel_logout_uri: z.string().max(2000).nullable().optional().describe('null removes it'),
    scope: z.string().max(2000).optional(),
  })
  .refine((changes) => Object.values(changes).some((value) => value !== undefined), 'give at least one field to change');

export const rotatedSecretSchema = z.object({ client_id: z.string(), client_secret: z.string().describe('the new secret, shown only in this answer') });
export const disabledClientSchema = z.object({ client_id: z.string(), disabled: z.literal(true), grants_revoked: z.number().int() });

// Audit

export const auditQuery = z.strictObject({
  after: instant.optional().describe('only events that occurred after this instant (RFC 3339)'),
  type: z.string().regex(/^[a-z_]+(\.[a-z_]+)+$/, 'is not an event type').optional().describe('one event type, e.g. admin.user_created'),
  user: z.uuid().optional().describe("a user's id"),
  ...pageQuery,
});

export const auditEventSchema = z.object({
  id: z.string().describe('the event id (a decimal integer)'),
  occurred_at: instant,
  type: z.string(),
  outcome: z.enum(['success', 'failure']),
  user_id: z.string().nullable(),
  client_id: z.string().nullable(),
  session_id: z.string().nullable(),
  ip: z.string().nullable(),
  user_agent: z.string().nullable(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
});
export const auditListSchema = list(auditEventSchema);

// Keys

export const kidParams = z.object({ kid: z.string().regex(/^[A-Za-z0-9_-]{1,128}$/, 'is not a key id') });

export const keySchema = z.object({
  kid: z.string(),
  alg: z.string(),
  state: z.string(),
  created_at: instant,
  activates_at: instant.nullable(),
  retires_at: instant.nullable(),
  revoked_at: instant.nullable(),
});
export const keyListSchema = list(keySchema);

export const keyEventsSchema = z.object({
  events: z.array(z.object({ event: z.string(), kid: z.string(), state: z.string().optional() })),
});
