import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { app, BrowserWindow, ipcMain, session, shell, type IpcMainInvokeEvent } from 'electron';
import { DesktopAuth, type AuthState, type BrowserOpener } from '../src/desktop-auth.ts';
import { fileTokenStore, memoryTokenStore } from '../src/token-store.ts';
import { electronSecretStorage } from './safe-storage.ts';

/**
 * The Electron main process, as far as signing in goes. All the logic is in ../src (tested under
 * Node); this file only wires it to Electron: the system browser, the OS keychain, and a window
 * whose renderer sees four functions and never a token.
 */
const ISSUER = process.env['JOBSWIPE_ISSUER'] ?? 'http://localhost:4000';
const CLIENT_ID = 'jobswipe-desktop';
const here = fileURLToPath(new URL('.', import.meta.url));
const APP_PAGE = join(here, 'app.html');

const systemBrowser: BrowserOpener = {
  async open(url) {
    // Only the provider's pages are ever opened from here.
    if (new URL(url).origin !== new URL(ISSUER).origin) throw new Error('refusing to open a URL outside the provider');
    await shell.openExternal(url);
  },
};

let window: BrowserWindow | undefined;

function createAuth(): DesktopAuth {
  const store = electronSecretStorage.isEncryptionAvailable()
    ? fileTokenStore(join(app.getPath('userData'), 'jobswipe-session.bin'), electronSecretStorage)
    : memoryTokenStore(); // DesktopAuth then reports MEMORY_ONLY in state().notice
  return new DesktopAuth({
    issuer: ISSUER,
    clientId: CLIENT_ID,
    store,
    onChange: (state: AuthState) => window?.webContents.send('auth:changed', state),
  });
}

/** IPC is answered only for our own page in the top frame. */
function fromAppPage(event: IpcMainInvokeEvent): boolean {
  const url = event.senderFrame?.url;
  return event.senderFrame === event.sender.mainFrame && url !== undefined && fileURLToPath(url) === APP_PAGE;
}

function handle(channel: string, action: () => Promise<unknown> | unknown): void {
  ipcMain.handle(channel, async (event) => {
    if (!fromAppPage(event)) throw new Error('not allowed');
    return action();
  });
}

async function start(): Promise<void> {
  await app.whenReady();
  const auth = createAuth();
  await auth.load().catch(() => auth.state());
  auth.startBackgroundRefresh();

  // Renderer-facing API: states and the user's public claims, never tokens.
  handle('auth:state', () => auth.state());
  handle('auth:user', () => auth.user() ?? null);
  handle('auth:signIn', async () => {
    try {
      await auth.signIn({ opener: systemBrowser });
    } catch (error) {
      return { ...auth.state(), notice: (error as Error).message };
    }
    return auth.state();
  });
  handle('auth:signOut', async () => {
    await auth.signOut();
    return auth.state();
  });

  // No permission (camera, notifications...) is ever granted to the app page.
  session.defaultSession.setPermissionRequestHandler((_contents, _permission, callback) => callback(false));

  window = new BrowserWindow({
    width: 480,
    height: 360,
    webPreferences: {
      preload: join(here, 'preload.cjs'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    },
  });
  // The window shows our page only: links open nowhere, navigation away is refused.
  window.webContents.setWindowOpenHandler(() => ({ action: 'deny' }));
  window.webContents.on('will-navigate', (event) => event.preventDefault());
  await window.loadFile(APP_PAGE);
}

app.on('window-all-closed', () => app.quit());
start().catch((error: unknown) => {
  console.error(error);
  app.exit(1);
});
