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
