/** Wrong words on the command line: exit status 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
}

/** The command understood its input but cannot do it: exit status 1, nothing written. */
export class CommandError extends Error {
  readonly exitCode = 1;
}
