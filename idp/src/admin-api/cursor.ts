import { z } from 'zod';
import { malformed } from '../http/json-body.ts';

/*
 * Lists are paginated by keyset: a page is the `limit` items after the last key of the previous one,
 * in a stable order over an indexed column. The cursor carries that key, opaque to clients
 * (base64url of JSON), so the order or the key can change without breaking them.
 */

export const DEFAULT_LIMIT = 20;
export const MAX_LIMIT = 100;

/** `cursor` and `limit` of every list operation's query. */
export const pageQuery = {
  cursor: z.string().max(512).optional().describe('next_cursor of the previous page'),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(DEFAULT_LIMIT).describe(`items per page, at most ${MAX_LIMIT}`),
};

export function encodeCursor(key: string | number): string {
  return Buffer.from(JSON.stringify({ k: key })).toString('base64url');
}

/** The key a cursor carries; a cursor this API did not give (or for another list) is a 400. */
export function decodeCursor<T extends z.ZodType<string | number>>(cursor: string | undefined, key: T): z.output<T> | undefined {
  if (cursor === undefined) return undefined;
  try {
    const decoded = key.safeParse((JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as { k?: unknown } | null)?.k);
    if (decoded.success) return decoded.data as z.output<T>;
  } catch {
    // Not JSON: answered below.
  }
  throw malformed('cursor: is not a cursor this list gave');
}

/** A page from `limit + 1` rows fetched after the cursor: the extra one says whether there is a next page. */
export function pageOf<T, R>(rows: T[], limit: number, keyOf: (row: T) => string | number, view: (row: T) => R): { items: R[]; next_cursor: string | null } {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items.map(view), next_cursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}

/** The same over a short list held whole (a user's sessions, the plans, the keys), ordered by key. */
export function pageOfList<T, R>(all: T[], after: string | undefined, limit: number, keyOf: (row: T) => string, view: (row: T) => R) {
  const ordered = [...all].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
  const rest = after === undefined ? ordered : ordered.filter((row) => keyOf(row) > after);
  return pageOf(rest.slice(0, limit + 1), limit, keyOf, view);
}
