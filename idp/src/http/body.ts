import coBody from 'co-body';
import type { Context } from 'koa';
import { badRequest, HttpError } from './errors.ts';

/** Reads an urlencoded form body as it came (no validation); a body we cannot take is a 415/413/400 page, never a 500. */
export async function readUrlencodedForm(ctx: Context): Promise<Record<string, unknown>> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new HttpError(415, 'Unsupported form', 'This page accepts only forms submitted from our pages.');
  }
  try {
    const body: unknown = await coBody.form(ctx.req, { limit: '16kb', queryString: { parameterLimit: 50, depth: 0 } });
    return typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === 413) throw new HttpError(413, 'Form too large', 'The form you sent is too large.');
    throw badRequest('The form could not be read. Go back, reload the page and try again.');
  }
}
