/** An error our own routes raise on purpose: its status and message are shown to the user as they are. */
export class HttpError extends Error {
  readonly status: number;
  readonly title: string;
  readonly headers: Record<string, string>;

  constructor(status: number, title: string, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.title = title;
    this.headers = headers;
  }
}

export const badRequest = (message: string) => new HttpError(400, 'This request could not be processed', message);

/** Extension members of a problem (RFC 9457 §3.2): what a client acts on besides the status. */
export type ProblemExtensions = Record<string, string | number | boolean | null>;

/**
 * An error our JSON APIs answer as RFC 9457 problem details: `type` names the problem (a URN of ours,
 * listed in docs/usage.md), `title` is the same for every occurrence, `detail` says what happened here.
 */
export class ProblemError extends HttpError {
  readonly type: string;
  readonly extensions: ProblemExtensions;

  constructor(status: number, type: string, title: string, detail: string, options: { headers?: Record<string, string>; extensions?: ProblemExtensions } = {}) {
    super(status, title, detail, options.headers);
    this.name = 'ProblemError';
    this.type = type;
    this.extensions = options.extensions ?? {};
  }
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The problem details document of an error (its extensions never override the standard members). */
export function problemDocument(error: ProblemError, instance?: string): Record<string, unknown> {
  return {
    ...error.extensions,
    type: error.type,
    title: error.title,
    status: error.status,
    detail: error.message,
    ...(instance ? { instance } : {}),
  };
}
