import type { Context, Middleware } from 'koa';
import type { z } from 'zod';
import { readUrlencodedForm } from './body.ts';
import { verifyCsrfToken } from './csrf.ts';
import { badRequest } from './errors.ts';

/** A route's form: the middleware that guards it, and the validated fields for the handler after it. */
export interface FormGuard<T> extends Middleware {
  fieldsOf(ctx: Context): T;
}

/**
 * Placed in a route definition before its handler (`router.post(path, form, handler)`): reads the
 * urlencoded body once, refuses it 403 unless `_csrf` matches this browser's cookie, and only then
 * validates the other fields against `schema` (400). A forged form is refused before anything it
 * says is looked at, whatever else it carries.
 */
export function formGuard<S extends z.ZodType>(schema: S): FormGuard<z.output<S>> {
  // Per guard, on the request's own state: one request, one form.
  const key = Symbol('form fields');
  const guard: Middleware = async (ctx, next) => {
    const { _csrf: token, ...fields } = await readUrlencodedForm(ctx);
    verifyCsrfToken(ctx, token);
    const parsed = schema.safeParse(fields);
    if (!parsed.success) throw badRequest('The form was incomplete. Go back, reload the page and try again.');
    (ctx.state as Record<symbol, unknown>)[key] = parsed.data;
    await next();
  };
  return Object.assign(guard, {
    fieldsOf(ctx: Context): z.output<S> {
      const state = ctx.state as Record<symbol, unknown>;
      if (!(key in state)) throw new Error('formGuard: the route did not run this guard before its handler');
      return state[key] as z.output<S>;
    },
  });
}
