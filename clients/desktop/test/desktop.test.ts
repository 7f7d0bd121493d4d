import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as oidc from 'openid-client';
import type { Browser as Chromium, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../../../test/support/chromium.ts';
import { runToExit, spawnNode, type Running } from '../../../test/support/processes.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { storeEnvironment } from '../../../test/support/stores.ts';
import { AuthError, DesktopAuth, GRANT_ENDED, MEMORY_ONLY, type BrowserOpener } from '../src/desktop-auth.ts';
import { listenForCallback } from '../src/loopback.ts';
import { aesGcmSecretStorage, NO_ENCRYPTION } from '../src/secret-storage.ts';
import { fileTokenStore, memoryTokenStore, type StoredSession } from '../src/token-store.ts';

/**
 * The desktop app's sign-in against the real provider, with headless Chromium as the system
 * browser, and the jobswipe-login CLI run as a separate process where a restart matters.
 */
const alice = { email: 'alice@example.com', password: 'correct horse battery staple', name: 'Alice' };
const CLIENT_ID = 'jobswipe-desktop';
const BIN = 'clients/desktop/bin/jobswipe-login.mjs';
const KEY = randomBytes(32).toString('base64');

/** The user at the browser: signs in when the login form shows, and notes whether it did. */
class ChromiumUser implements BrowserOpener {
  loginFormsSeen = 0;
  pages: Page[] = [];
  #tasks: Array<Promise<void>> = [];

  readonly context: BrowserContext;

  constructor(context: BrowserContext) {
    this.context = context;
  }

  async open(url: string): Promise<void> {
    const page = await this.context.newPage();
    this.pages.push(page);
    this.#tasks.push(
      (async () => {
        await page.goto(url);
        if ((await page.locator('input[name="password"]').count()) > 0) {
          this.loginFormsSeen += 1;
          await page.fill('input[name="email"]', alice.email);
          await page.fill('input[name="password"]', alice.password);
          await Promise.all([page.waitForURL((next) => next.hostname === '127.0.0.1' && next.pathname === '/callback'), page.click('button[type="submit"]')]);
        }
      })(),
    );
  }

  /** Rethrows anything that went wrong in the browser. */
  async finished(): Promise<void> {
    await Promise.all(this.#tasks);
  }
}

describe('desktop sign-in (postgres)', () => {
  let idp: TestServer;
  let chromium: Chromium;
  let dir: string;
  const running: Running[] = [];
  const env = { JOBSWIPE_STORE_KEY: KEY };

  const desktop = (store = memoryTokenStore()) => new DesktopAuth({ issuer: idp.issuer, clientId: CLIENT_ID, store });
  const encryptedStore = (name: string) => fileTokenStore(join(dir, name), aesGcmSecretStorage(Buffer.from(KEY, 'base64')));
  const cli = (args: string[], timeoutMs = 30_000) => runToExit(BIN, [...args, '--issuer', idp.issuer], env, timeoutMs);

  beforeAll(async () => {
    // Without the provider's reuse grace period, so that presenting a rotated-out token is a reuse at once.
    [idp, chromium, dir] = await Promise.all([startTestServer('postgres', { REFRESH_TOKEN_REUSE_GRACE_SECONDS: '0' }), launchChromium(), mkdtemp(join(tmpdir(), 'jobswipe-desktop-'))]);
    // The client comes from the example seed, imported with the provider's own CLI.
    const imported = await runToExit('idp/src/cli/main.ts', ['import', '--file', 'clients/desktop/seed.example.json'], storeEnvironment(idp.store), 60_000);
    expect(imported.out.at(-1)).toBe('1 clients, 0 users imported, 0 changed');
    const { id: aliceId } = await idp.createUser(alice);
    // Alice signs the app in many times here, from several browsers: a plan with room for those
    // devices (the desktop device limit has its own tests, idp/test/usage/desktop-devices*.test.ts).
    const administrator = { kind: 'administrator' } as const;
    await idp.server.libraries.plans.save({ id: 'unlimited', name: 'Unlimited', limits: {}, desktop_devices: 1000 }, administrator);
    await idp.server.libraries.plans.setPlan(aliceId, 'unlimited', administrator);
  });

  afterAll(async () => {
    await Promise.all(running.map((process) => process.stop()));
    await chromium?.close();
    await idp?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function refreshTokenWorks(token: string): Promise<boolean> {
    const config = await desktop().configuration();
    return oidc.refreshTokenGrant(config, token).then(
      () => true,
      (error: unknown) => {
        if (error instanceof oidc.ResponseBodyError && error.error === 'invalid_grant') return false;
        throw error;
      },
    );
  }

  let main: DesktopAuth;
  let mainContext: BrowserContext;

  it('signs in through the system browser and writes only ciphertext to disk', async () => {
    mainContext = await chromium.newContext();
    const user = new ChromiumUser(mainContext);
    main = desktop(encryptedStore('main.tokens'));
    const signedIn = await main.signIn({ opener: user, timeoutMs: 20_000 });
    await user.finished();
    expect(signedIn.email).toBe(alice.email);
    expect(user.loginFormsSeen).toBe(1);
    expect(await user.pages[0]?.textContent('body')).toContain('You can return to JobSwipe');
    expect(main.state()).toMatchObject({ status: 'signed-in', persistent: true });

    const file = await readFile(join(dir, 'main.tokens'));
    expect((await stat(join(dir, 'main.tokens'))).mode & 0o777).toBe(0o600);
    const session = (await encryptedStore('main.tokens').load()) as StoredSession;
    for (const secret of [session.refreshToken, session.accessToken, session.idToken, alice.email]) {
      expect(secret).toBeTruthy();
      expect(file.includes(Buffer.from(secret as string))).toBe(false);
      expect(file.toString('latin1')).not.toContain((secret as string).slice(0, 16));
    }
    expect(file.toString('latin1')).not.toMatch(/refresh|access_?token|eyJ/i);
  });

  it('is still signed in after a restart: a new process reads the encrypted file', async () => {
    const status = await cli(['status', '--store', join(dir, 'main.tokens')]);
    expect(status.out).toEqual([`Signed in as ${alice.email}`]);
    expect(status.code).toBe(0);
    // Without the key the file cannot be used, and nothing is written in the clear.
    const keyless = await runToExit(BIN, ['status', '--store', join(dir, 'main.tokens'), '--issuer', idp.issuer], {}, 30_000);
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toContain('JOBSWIPE_STORE_KEY is not set');
  });

  it('hands over the browser session: signed in at the provider first, the desktop sign-in shows no login form', async () => {
    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(`${idp.issuer}/account`);
    await page.fill('input[name="email"]', alice.email);
    await page.fill('input[name="password"]', alice.password);
    await Promise.all([page.waitForURL(`${idp.issuer}/account`), page.click('button[type="submit"]')]);

    const user = new ChromiumUser(context);
    const signedIn = await desktop().signIn({ opener: user, timeoutMs: 20_000 });
    await user.finished();
    expect(signedIn.email).toBe(alice.email);
    expect(user.loginFormsSeen).toBe(0);
    await context.close();
  });

  it('rotates the refresh token (one request for concurrent callers) and keeps the newest on disk', async () => {
    const first = main.currentRefreshToken() as string;
    const [a, b] = await Promise.all([main.refresh(), main.refresh()]);
    expect(a).toBe(b);
    const second = main.currentRefreshToken() as string;
    expect(second).not.toBe(first);
    expect((await encryptedStore('main.tokens').load())?.refreshToken).toBe(second);
    // The rotated-out token no longer works: presenting it is a reuse, and the grant goes with it.
    expect(await refreshTokenWorks(first)).toBe(false);
    await expect(main.refresh()).rejects.toMatchObject({ code: 'ERR_SIGNED_OUT', message: GRANT_ENDED });
    expect(main.state()).toMatchObject({ status: 'signed-out', notice: GRANT_ENDED });
    expect(await encryptedStore('main.tokens').load()).toBeUndefined();
  });

  it('returns to the signed-out state with a message when the grant is revoked at the provider', async () => {
    const user = new ChromiumUser(mainContext);
    const auth = desktop();
    await auth.signIn({ opener: user, timeoutMs: 20_000 });
    await user.finished();
    const token = await idp.server.provider.RefreshToken.find(auth.currentRefreshToken() as string);
    const grant = await idp.server.provider.Grant.find(token?.grantId as string);
    await grant?.destroy();
    await expect(auth.accessToken()).resolves.toBeTruthy(); // the access token is still valid
    await expect(auth.refresh()).rejects.toBeInstanceOf(AuthError);
    expect(auth.state()).toMatchObject({ status: 'signed-out', notice: GRANT_ENDED });
  });

  it('signs out: the refresh token is revoked at the provider and the file removed', async () => {
    const user = new ChromiumUser(mainContext);
    const auth = desktop(encryptedStore('signout.tokens'));
    await auth.signIn({ opener: user, timeoutMs: 20_000 });
    await user.finished();
    const token = auth.currentRefreshToken() as string;
    expect(await auth.signOut()).toEqual({ revoked: true });
    expect(auth.state().status).toBe('signed-out');
    await expect(stat(join(dir, 'signout.tokens'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await idp.server.provider.RefreshToken.find(token)).toBeUndefined();
    expect(await refreshTokenWorks(token)).toBe(false);
    const status = await cli(['status', '--store', join(dir, 'signout.tokens')]);
    expect(status).toMatchObject({ code: 1, out: ['Signed out'] });
  });

  it('keeps tokens in memory only, and says so, when nothing can encrypt them', () => {
    expect(() => fileTokenStore(join(dir, 'never'), NO_ENCRYPTION)).toThrow(/refusing/);
    expect(desktop().state()).toEqual({ status: 'signed-out', persistent: false, notice: MEMORY_ONLY });
  });

  it('stays signed in while the provider cannot be reached, retrying with backoff', async () => {
    const store = memoryTokenStore();
    const session: StoredSession = { version: 1, issuer: 'http://127.0.0.1:9', clientId: CLIENT_ID, refreshToken: 'unspent', user: { sub: 'x', email: alice.email } };
    await store.save(session);
    const auth = new DesktopAuth({ issuer: session.issuer, clientId: CLIENT_ID, store, retry: { firstDelayMs: 10, maxDelayMs: 40, attempts: 3 } });
    await auth.load();
    await expect(auth.refresh()).rejects.toMatchObject({ code: 'ERR_OFFLINE' });
    expect(auth.state().status).toBe('signed-in');
    expect(auth.currentRefreshToken()).toBe('unspent');
  });

  it('jobswipe-login login prints the URL and signs in once the browser returns', async () => {
    const store = join(dir, 'cli.tokens');
    const process = spawnNode(BIN, ['login', '--no-open', '--issuer', idp.issuer, '--store', store], env);
    running.push(process);
    const line = await waitForLine(process, /^Open this URL to sign in: (\S+)$/);
    const user = new ChromiumUser(mainContext);
    await user.open(line[1] as string);
    await user.finished();
    expect(await process.exited).toBe(0);
    expect(process.stdout().trim().split('\n').at(-1)).toBe(`Signed in as ${alice.email}`);
  });

  it('jobswipe-login login --device: the code is entered in a browser, then status and logout', async () => {
    const store = join(dir, 'device.tokens');
    const process = spawnNode(BIN, ['login', '--device', '--no-open', '--issuer', idp.issuer, '--store', store], env);
    running.push(process);
    const [, uri, code] = await waitForLine(process, /^Visit (\S+) and enter the code (\S+)$/);
    expect(uri).toBe(`${idp.issuer}/device`);

    const context = await chromium.newContext();
    const page = await context.newPage();
    await page.goto(uri as string);
    await page.fill('input[name="user_code"]', code as string);
    await Promise.all([page.waitForLoadState(), page.click('button[type="submit"]')]);
    expect(await page.textContent('h1')).toContain('Sign in to JobSwipe Desktop?');
    await Promise.all([page.waitForURL(/\/interaction\//), page.click('button[name="confirm"]')]);
    await page.fill('input[name="email"]', alice.email);
    await page.fill('input[name="password"]', alice.password);
    await Promise.all([page.waitForURL(/\/device\//), page.click('button[type="submit"]')]);
    expect(await page.textContent('h1')).toBe('Your device is signed in');
    await context.close();

    expect(await process.exited).toBe(0);
    expect(process.stdout().trim().split('\n').at(-1)).toBe(`Signed in as ${alice.email}`);

    expect(await cli(['status', '--store', store])).toMatchObject({ code: 0, out: [`Signed in as ${alice.email}`] });
    expect(await cli(['logout', '--store', store])).toMatchObject({ code: 0, out: ['Signed out'] });
    expect(await cli(['status', '--store', store])).toMatchObject({ code: 1, out: ['Signed out'] });
  });
});

describe('loopback redirect listener', () => {
  it('accepts one callback with the right state and refuses a second', async () => {
    const listener = await listenForCallback({ expectedState: 'expected', timeoutMs: 10_000 });
    const first = await fetch(`${listener.redirectUri}?code=abc&state=expected`);
    expect(first.status).toBe(200);
    expect(await first.text()).toContain('You can return to JobSwipe');
    expect((await listener.callback).searchParams.get('code')).toBe('abc');
    const second = await fetch(`${listener.redirectUri}?code=def&state=expected`).then((response) => response.status, () => 'refused');
    expect(second).toBe('refused');
  });

  it('fails on a state mismatch, with an error page', async () => {
    const listener = await listenForCallback({ expectedState: 'expected', timeoutMs: 10_000 });
    const response = await fetch(`${listener.redirectUri}?code=abc&state=forged`);
    expect(response.status).toBe(400);
    expect(await response.text()).toContain('Sign-in failed');
    await expect(listener.callback).rejects.toMatchObject({ code: 'ERR_CALLBACK_STATE' });
    const again = await fetch(`${listener.redirectUri}?code=abc&state=expected`).then((r) => r.status, () => 'refused');
    expect(again).toBe('refused');
  });

  it('times out with a clear message', async () => {
    const listener = await listenForCallback({ expectedState: 'expected', timeoutMs: 200 });
    await expect(listener.callback).rejects.toThrow(/not completed in the browser within/);
  });
});

async function waitForLine(process: Running, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const line of process.stdout().split('\n')) {
      const match = pattern.exec(line);
      if (match) return match;
    }
    if (process.child.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`no line matching ${pattern}; stdout: ${process.stdout()} stderr: ${process.stderr()}`);
}
