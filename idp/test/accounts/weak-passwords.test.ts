import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AddressedBrowser, formAction, hiddenField } from '../../../test/support/browser.ts';
import { runToExit } from '../../../test/support/processes.ts';
import { authorizationRequest, registeredRelyingParty, signIn, webAppClient, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';
import { createAccountTokens } from '../../src/users/account-tokens.ts';

const GOOD = 'a long and unusual passphrase';

/** The weak passwords of the review, each with the reason the page or the CLI must give, for an owner. */
function weakPasswords(owner: { email: string; name: string }): Array<[string, string]> {
  return [
    [' '.repeat(10), 'password repeats one character'],
    ['0000000000', 'password repeats one character'],
    [owner.email, 'password is your email address'],
    [`  ${owner.email.toUpperCase()}  `, 'password is your email address'],
    ['password    ', 'password is too common'],
    [`${owner.name} 1865!`, 'password is built from your name'],
    ['abcabcabcabc', 'password repeats a short sequence of characters'],
    ['9876543210', 'password is a run of consecutive characters'],
    ['abcdefghij', 'password is a run of consecutive characters'],
  ];
}

// Every surface that sets a password reaches the same rule with the account's email and name.
describe('weak passwords are refused with their reason on every surface (postgres)', { timeout: 120_000 }, () => {
  let idp: TestServer;
  let web: RelyingParty;
  let env: Record<string, string>;
  let dir: string;
  let accounts = 0;

  beforeAll(async () => {
    idp = await startTestServer('postgres', { TRUST_PROXY: 'loopback' });
    web = await registeredRelyingParty(idp, webAppClient());
    env = { ...storeEnvironment(idp.store), ISSUER: idp.issuer };
    dir = await mkdtemp(join(tmpdir(), 'idp-weak-passwords-'));
  });

  afterAll(async () => {
    await idp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const nextOwner = () => {
    accounts += 1;
    return { email: `cheshire.cat${accounts}@example.com`, name: 'Dinah Kingsleigh' };
  };
  const userCount = async (email: string) =>
    Number((await idp.server.database.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).where('email', '=', email).executeTakeFirstOrThrow()).n);

  it('sign-up page', async () => {
    const owner = nextOwner();
    for (const [password, reason] of weakPasswords(owner)) {
      const browser = new AddressedBrowser();
      const login = await browser.follow((await authorizationRequest(web, 'openid email')).url);
      const uid = /\/interaction\/([^/"]+)\/login/.exec(login.body)![1]!;
      const page = await browser.request(`${idp.issuer}/interaction/${uid}/signup`);
      const answer = await browser.request(formAction(page.body, idp.issuer), {
        form: { _csrf: hiddenField(page.body, '_csrf'), email: owner.email, name: owner.name, password },
      });
      expect(answer.status, password).toBe(400);
      expect(answer.body, password).toContain(`Choose another password: ${reason}`);
    }
    expect(await userCount(owner.email)).toBe(0);
  });

  it('/account change password', async () => {
    const owner = nextOwner();
    await idp.createUser({ ...owner, password: GOOD });
    const browser = new AddressedBrowser();
    const request = await authorizationRequest(web, 'openid email');
    expect((await signIn(browser, idp.issuer, request, web.redirectUri, { email: owner.email, password: GOOD })).status).toBe(303);
    for (const [password, reason] of weakPasswords(owner)) {
      const page = await browser.request(`${idp.issuer}/account/password`);
      const answer = await browser.request(`${idp.issuer}/account/password`, { form: { _csrf: hiddenField(page.body, '_csrf'), current_password: GOOD, password } });
      expect(answer.status, password).toBe(400);
      expect(answer.body, password).toContain(`Your new ${reason}`);
    }
    // Nothing was changed: the old password still signs in.
    const again = await signIn(new AddressedBrowser(), idp.issuer, await authorizationRequest(web, 'openid email'), web.redirectUri, { email: owner.email, password: GOOD });
    expect(again.status).toBe(303);
  });

  it('password reset', async () => {
    const owner = nextOwner();
    const { id } = await idp.createUser({ ...owner, password: GOOD });
    const link = `${idp.issuer}/reset-password?token=${await createAccountTokens(idp.server.database.db).issue('reset_password', { userId: id })}`;
    for (const [password, reason] of weakPasswords(owner)) {
      const browser = new AddressedBrowser();
      const form = await browser.request(link);
      expect(form.status, 'a refused password does not spend the link').toBe(200);
      const answer = await browser.request(`${idp.issuer}/reset-password`, { form: { _csrf: hiddenField(form.body, '_csrf'), token: hiddenField(form.body, 'token'), password } });
      expect(answer.status, password).toBe(400);
      expect(answer.body, password).toContain(`Choose another password: ${reason}`);
    }
  });

  it('`idp users create` and `idp import`', { timeout: 600_000 }, async () => {
    const owner = nextOwner();
    const refusal = async ([password, reason]: [string, string], index: number) => {
      const created = await runToExit('idp/src/cli/main.ts', ['users', 'create', '--email', owner.email, '--name', owner.name, '--password-stdin'], env, 120_000, { stdin: `${password}\n` });
      expect(created.code, password).toBe(1);
      expect(created.stderr, password).toContain(`idp users create: ${reason}`);

      const seed = join(dir, `seed-${index}.json`);
      await writeFile(seed, JSON.stringify({ users: [{ email: owner.email, name: owner.name, password }] }));
      const imported = await runToExit('idp/src/cli/main.ts', ['import', '--file', seed], env, 120_000);
      expect(imported.code, password).toBe(1);
      expect(imported.stderr, password).toContain(`${owner.email}: ${reason}`);
    };
    // Each run is a process start: three at a time keeps this suite's time bounded.
    const cases = weakPasswords(owner);
    for (let start = 0; start < cases.length; start += 3) {
      await Promise.all(cases.slice(start, start + 3).map((weak, offset) => refusal(weak, start + offset)));
    }
    expect(await userCount(owner.email)).toBe(0);
  });
});
