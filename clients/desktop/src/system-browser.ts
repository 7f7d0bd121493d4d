import { spawn } from 'node:child_process';
import type { BrowserOpener } from './browser-sign-in.ts';

/** The user's default browser outside Electron (the CLI): open, xdg-open or start. */
export const systemBrowser: BrowserOpener = {
  async open(url) {
    const [command, args] =
      process.platform === 'darwin' ? ['open', [url]] : process.platform === 'win32' ? ['cmd', ['/c', 'start', '""', url]] : ['xdg-open', [url]];
    await new Promise<void>((resolve, reject) => {
      const child = spawn(command, args as string[], { stdio: 'ignore', detached: true });
      child.once('error', reject);
      child.once('spawn', () => {
        child.unref();
        resolve();
      });
    });
  },
};
