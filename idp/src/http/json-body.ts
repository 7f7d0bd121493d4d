import coBody from 'co-body';
import type { Context } from 'koa';
import type { z } from 'zod';
import { ProblemError } from './errors.ts';

/** A request our JSON APIs cannot take as it is: 400, naming the problem. */
export const malformed = (detail: string) => new ProblemError(400, 'urn:jobswipe:problem:malformed-request', 'Malformed request', detail);

/** The first zod issue, as a client reads it: the field, then what is wrong with it. */
export function firstIssue(error: z.ZodError, where = 'body'): string {
  const issue = error.issues[0];
  if (!issue) return 'the request is invalid';
  if (issue.code === 'unrecognized_keys') return `unknown field(s): ${issue.keys.join(', ')}`;
  return `${issue.path.length ? issue.path.join('.') : where}: ${issue.message}`;
}

/** The JSON body, or a 400/413/415 problem: never a 500 for what a client sent. */
export async function readJson(ctx: Context): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new ProblemError(415, 'urn:jobswipe:problem:unsupported-media-type', 'Unsupported Media Type', 'send the body as application/json');
  }
  try {
    return await coBody.json(ctx.req, { limit: '16kb', strict: true });
  } catch (error) {
    if ((error as { status?: number }).status === 413) throw new ProblemError(413, 'urn:jobswipe:problem:too-large', 'Content Too Large', 'the body is larger than 16 KiB');
    throw malformed('the body is not valid JSON');
  }
}
