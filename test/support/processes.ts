import { createServer } from 'node:net';
import { environmentSchema } from '../../config/src/schema.ts';

/** The repository root: child processes run from here, as `npm start` and `npm run idp` do. */
export const ROOT = new URL('../../', import.meta.url).pathname;

/** oidc-provider warns about Node 20 on stderr at import; that line is not ours. */
const RUNTIME_WARNING = /^oidc-provider WARNING: Unsupported runtime/;

/** process.env without any of our settings (the test runner sets NODE_ENV, a developer may have others). */
export function baseEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(environmentSchema.shape)) delete env[name];
  return env;
}

/** Lines of stderr that we wrote (blank lines and the runtime warning removed). */
export function ownLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line.trim() !== '' && !RUNTIME_WARNING.test(line));
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
