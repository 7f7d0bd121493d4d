// Sandboxed preload scripts must be CommonJS; tsc emits this file as preload.cjs.
// A plain require (no `import x = require`): the code base is erasable TypeScript throughout.
const electron: typeof import('electron') = require('electron');
import type { AuthState, User } from '../src/desktop-auth.ts';

/** The whole API the renderer gets: states and the user's public claims, never a token. */
const auth = {
  state: (): Promise<AuthState> => electron.ipcRenderer.invoke('auth:state'),
  signIn: (): Promise<AuthState> => electron.ipcRenderer.invoke('auth:signIn'),
  signOut: (): Promise<AuthState> => electron.ipcRenderer.invoke('auth:signOut'),
  user: (): Promise<User | null> => electron.ipcRenderer.invoke('auth:user'),
  onChange: (listener: (state: AuthState) => void): void => {
    electron.ipcRenderer.on('auth:changed', (_event, state: AuthState) => listener(state));
  },
};

electron.contextBridge.exposeInMainWorld('auth', auth);
