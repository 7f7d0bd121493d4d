import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const run = promisify(execFile);

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}

/** Runs PGlite's initdb once per test run; every embedded store in the tests starts from a copy. */
export default async function setup(project: TestProject) {
  const root = await mkdtemp(join(tmpdir(), 'jobswipe-test-'));
  const template = join(root, 'pgdata');
  const script = new URL('../../adapters/src/initdb-child.mjs', import.meta.url).pathname;
  await run(process.execPath, [script, template], { timeout: 120_000 });
  project.provide('pgliteTemplate', template);
  return async () => {
    await rm(root, { recursive: true, force: true });
  };
}
