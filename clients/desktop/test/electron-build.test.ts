import { execFile } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { runInNewContext } from 'node:vm';
import { beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../../test/support/processes.ts';

const run = promisify(execFile);
const DIST = join(ROOT, 'clients/desktop/dist');

/** Every file under dir, recursively. */
async function files(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

// Electron's binary cannot run here: these tests check what `npm run build -w clients/desktop` makes
// of the main process, the preload and the app page, so that `npm run start -w clients/desktop` has
// something complete to start.
describe('the Electron build (npm run build -w clients/desktop)', () => {
  beforeAll(async () => {
    await run('npm', ['run', '-s', 'build', '-w', 'clients/desktop'], { cwd: ROOT, timeout: 120_000 });
  }, 150_000);

  it('emits the main process, the CommonJS preload and the app page where package.json "main" and main.js expect them', async () => {
    const manifest = JSON.parse(await readFile(join(ROOT, 'clients/desktop/package.json'), 'utf8')) as { main: string };
    const emitted = (await files(DIST)).map((file) => file.slice(DIST.length + 1)).sort();
    expect(emitted).toEqual(expect.arrayContaining(['electron/main.js', 'electron/preload.cjs', 'electron/app.html', 'electron/app.css', 'electron/renderer.js']));
    expect(join('clients/desktop', manifest.main)).toBe('clients/desktop/dist/electron/main.js');
    const main = await readFile(join(DIST, 'electron/main.js'), 'utf8');
    expect(main).toContain("join(here, 'preload.cjs')");
    expect(main).toContain("join(here, 'app.html')");
  });

  it('every relative import of the emitted code points at an emitted .js file, never at TypeScript', async () => {
    for (const file of (await files(DIST)).filter((name) => /\.c?js$/.test(name))) {
      const text = await readFile(file, 'utf8');
      const specifiers = [...text.matchAll(/(?:from\s+|require\()\s*['"](\.{1,2}\/[^'"]+)['"]/g)].map((match) => match[1]!);
      for (const specifier of specifiers) {
        expect(specifier, `${file}: ${specifier}`).toMatch(/\.c?js$/);
        await expect(readFile(resolve(dirname(file), specifier)), `${file}: ${specifier}`).resolves.toBeDefined();
      }
    }
  });

  it('the window is isolated: context isolation, sandbox, no Node integration, and a strict CSP on the page', async () => {
    const main = await readFile(join(DIST, 'electron/main.js'), 'utf8');
    expect(main).toMatch(/contextIsolation: true/);
    expect(main).toMatch(/sandbox: true/);
    expect(main).toMatch(/nodeIntegration: false/);
    const page = await readFile(join(DIST, 'electron/app.html'), 'utf8');
    expect(page).toMatch(/<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'self';/);
    expect(page).not.toMatch(/<script>(?!<\/script>)/);
  });

  it('the preload exposes exactly the narrow auth API to the page, and nothing that carries a token', async () => {
    // The sandboxed preload is CommonJS that needs only electron's contextBridge and ipcRenderer: run it
    // with a stand-in for those two (Electron itself cannot run here) and look at what it exposes.
    const exposed: Record<string, Record<string, unknown>> = {};
    const invoked: string[] = [];
    const electron = {
      contextBridge: { exposeInMainWorld: (name: string, api: Record<string, unknown>) => (exposed[name] = api) },
      ipcRenderer: { invoke: async (channel: string) => invoked.push(channel), on: () => {} },
    };
    const source = await readFile(join(DIST, 'electron/preload.cjs'), 'utf8');
    const module = { exports: {} };
    const requireReal = createRequire(join(DIST, 'electron/preload.cjs'));
    runInNewContext(source, {
      module,
      exports: module.exports,
      require: (id: string) => (id === 'electron' ? electron : requireReal(id)),
    });
    expect(Object.keys(exposed)).toEqual(['auth']);
    expect(Object.keys(exposed['auth']!).sort()).toEqual(['onChange', 'signIn', 'signOut', 'state', 'user']);
    for (const name of ['state', 'signIn', 'signOut', 'user']) await (exposed['auth']![name] as () => Promise<unknown>)();
    expect(invoked).toEqual(['auth:state', 'auth:signIn', 'auth:signOut', 'auth:user']);
  });
});
