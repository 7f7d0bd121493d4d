import { z } from 'zod';

/** The largest limit a plan may set (and so the largest counter): counters are 32-bit integers. */
export const MAX_LIMIT = 1_000_000_000;
/** The largest quantity one request may record. */
export const MAX_QUANTITY = 1_000_000;

export const planIdSchema = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be 1-64 lower-case letters, digits, "_" or "-", starting with a letter or digit');
export const meterSchema = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'must be 1-64 lower-case letters, digits or "_", starting with a letter');
const featureSchema = z.string().regex(/^[a-z][a-z0-9_:.-]{0,63}$/, 'must be 1-64 lower-case letters, digits or "_ : . -", starting with a letter');

/** A plan as the seed file, the CLI and the admin API give it (snake_case, as it is shown). */
export const planSchema = z.strictObject({
  id: planIdSchema,
  name: z
    .string()
    .trim()
    .min(1, 'is required')
    .max(200)
    .refine((name) => !/[\u0000-\u001f\u007f-\u009f]/.test(name), 'contains a control character'),
  limits: z.record(meterSchema, z.number().int().min(0).max(MAX_LIMIT)).default({}),
  desktop_devices: z.number().int().min(0).max(1000),
  features: z
    .array(featureSchema)
    .max(100)
    .default([])
    .refine((features) => new Set(features).size === features.length, 'lists a feature twice'),
});

export type PlanInput = z.input<typeof planSchema>;
export type PlanDefinition = z.output<typeof planSchema>;

/** POST /api/usage. */
export const recordUsageSchema = z.strictObject({
  sub: z.string().min(1).max(255),
  meter: meterSchema,
  quantity: z.number().int().min(1).max(MAX_QUANTITY),
  idempotency_key: z
    .string()
    .min(1)
    .max(200)
    .refine((key) => !/[\u0000-\u001f\u007f]/.test(key), 'contains a control character'),
});

/** GET /api/usage?sub=&meter= */
export const readUsageSchema = z.strictObject({
  sub: z.string().min(1).max(255),
  meter: meterSchema,
});
