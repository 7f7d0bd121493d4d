import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runToExit } from '../../../test/support/processes.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';

// What an attacker may put in their sign-up name: colour, a carriage return that overwrites the
// line, a bidi override that reorders it, a C1 CSI, DEL and a line separator.
const HOSTILE_NAME = 'Mallory\u001b[31m red\u001b[0m\rroot\u202eevil\u2069\u009b2J\u007f\u2028x';
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

// On the embedded store the command runs inside the server and comes back through its admin socket.
describe.each(['embedded', 'postgres'] as const)('CLI output escapes control characters (%s)', { timeout: 90_000 }, (setup) => {
  let idp: TestServer;
  let env: Record<string, string>;
  let dir: string;

  beforeAll(async () => {
    idp = await startTestServer(setup);
    env = { ...storeEnvironment(idp.store), ISSUER: idp.issuer };
    dir = await mkdtemp(join(tmpdir(), 'idp-terminal-'));
  });

  afterAll(async () => {
    await idp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('lists a user whose name holds escape sequences without a raw control byte', async () => {
    const seed = join(dir, 'seed.json');
    await writeFile(seed, JSON.stringify({ users: [{ email: 'mallory@example.com', name: HOSTILE_NAME, password: 'a long and unusual passphrase' }] }));
    const imported = await runToExit('idp/src/cli/main.ts', ['import', '--file', seed], env, 45_000);
    expect(imported.code, imported.stderr).toBe(0);

    const listed = await runToExit('idp/src/cli/main.ts', ['users', 'list'], env, 45_000);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).not.toMatch(RAW_CONTROL);
    const row = listed.out.find((line) => line.includes('mallory@example.com'));
    expect(row).toContain('Mallory\\x1b[31m red\\x1b[0m\\x0droot\\u202eevil\\u2069\\u009b2J\\u007f\\u2028x');
    expect(listed.out.filter((line) => line.includes('mallory@example.com'))).toHaveLength(1);
  });
});
