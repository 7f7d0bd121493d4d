/**
 * The streams an `idp` command talks through, whether it runs in the CLI's process or in a server's,
 * forwarded over the admin socket: both sides share this one shape (neither imports the other for it).
 */
export interface CommandIo {
  out(line: string): void;
  /** Messages for a person (summaries, warnings); standard output stays parseable. */
  err(line: string): void;
  readStdin(): Promise<string>;
  /** Aborted when the caller goes away (the admin socket closed): long-running commands stop. */
  signal?: AbortSignal | undefined;
}
