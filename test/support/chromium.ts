import { accessSync, constants } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's chromium package installs here; CI installs it (.ci/run). */
export const DEFAULT_CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Flags for a quiet, local-only headless Chromium: no sandbox (tests run as root), no GPU, and none
 * of the background traffic a desktop browser makes (updates, sync, QUIC probes).
 */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** The Chromium executable the tests drive: CHROMIUM_PATH, or Debian's package. */
export function chromiumPath(): string {
  // An empty CHROMIUM_PATH counts as unset.
  return process.env.CHROMIUM_PATH || DEFAULT_CHROMIUM_PATH;
}

/**
 * Launches the system's headless Chromium with playwright-core. Never downloads a browser: a missing
 * executable is an error (the suite fails, as it does without Postgres or Redis), not a skip.
 */
export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  try {
    accessSync(executablePath, constants.X_OK);
  } catch {
    throw new Error(
      `Chromium not found at ${executablePath}: install Debian's chromium package (apt-get install -y chromium) or set CHROMIUM_PATH`,
    );
  }
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

/**
 * Records every response of the provider's that is an error (pages, the stylesheet...), but the
 * favicon, which it does not serve: a real browser loads what the tests' fetch-based client never does.
 */
export function watchProviderErrors(page: Page, issuer: string): string[] {
  const errors: string[] = [];
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.origin === issuer && response.status() >= 400 && url.pathname !== '/favicon.ico') {
      errors.push(`${response.status()} ${response.request().method()} ${url.pathname}`);
    }
  });
  return errors;
}
