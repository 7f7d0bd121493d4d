import coBody from 'co-body';
import type { Context } from 'koa';
import type { z } from 'zod';
import { badRequest, HttpError } from './errors.ts';

/** Parses an urlencoded form body and validates it; any failure is a 400/413 page, never a 500. */
export async function readForm<T extends z.ZodType>(ctx: Context, schema: T): Promise<z.output<T>> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new HttpError(415, 'Unsupported form', 'This page accepts only forms submitted from our pages.');
  }
  let body: unknown;
  try {
    body = await coBody.form(ctx.req, { limit: '16kb', queryString: { parameterLimit: 50, depth: 0 } });
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === 413) throw new HttpError(413, 'Form too large', 'The form you sent is too large.');
    throw badRequest('The form could not be read. Go back, reload the page and try again.');
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequest('The form was incomplete. Go back, reload the page and try again.');
  return parsed.data;
}
