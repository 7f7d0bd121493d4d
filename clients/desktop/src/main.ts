import { runCli } from './cli.ts';

// The entry of the jobswipe-login bin (bin/jobswipe-login.mjs).
process.exitCode = await runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
});
