import { describe, expect, it } from 'vitest';
import { describeDevice, timeAgo, USER_AGENT_MAX } from './device.ts';

// Real user agents, as browsers send them.
const CHROME_MACOS =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const SAFARI_IOS =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const FIREFOX_WINDOWS = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0';
const HEADLESS_CHROME_LINUX =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.6367.29 Safari/537.36';
const EDGE_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51';
const ELECTRON_MACOS =
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.37.94 Chrome/122.0.6261.156 Electron/29.4.0 Safari/537.36';
const CHROME_ANDROID =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36';

describe('describeDevice', () => {
  it.each([
    ['Chrome on macOS', CHROME_MACOS, 'Chrome on macOS'],
    ['Safari on iOS', SAFARI_IOS, 'Safari on iOS'],
    ['Firefox on Windows', FIREFOX_WINDOWS, 'Firefox on Windows'],
    // Headless Chrome (Playwright, Puppeteer) is shown as the Chrome it is.
    ['HeadlessChrome on Linux', HEADLESS_CHROME_LINUX, 'Chrome on Linux'],
    // Edge carries a Chrome token too; the Edg/ token wins.
    ['Edge on Windows', EDGE_WINDOWS, 'Microsoft Edge on Windows'],
    // An Electron desktop app is named as Electron, not as the Chrome it embeds.
    ['an Electron app on macOS', ELECTRON_MACOS, 'Electron on macOS'],
    ['Chrome on Android', CHROME_ANDROID, 'Chrome on Android'],
  ])('%s', (_label, userAgent, expected) => {
    expect(describeDevice(userAgent)).toBe(expected);
  });

  it('names the operating system alone when the browser is unknown', () => {
    expect(describeDevice('SomeBot (X11; Linux x86_64)')).toBe('Unknown browser on Linux');
  });

  it('an empty or blank agent is "Unknown device"', () => {
    expect(describeDevice('')).toBe('Unknown device');
    expect(describeDevice('   \t ')).toBe('Unknown device');
  });

  it('non-browser clients and garbage are "Unknown device", never an exception', () => {
    for (const userAgent of ['curl/8.5.0', 'python-requests/2.31.0', '%%%$$$ ¯\\_(ツ)_/¯ \u0000\u0001', '()()();;;//', '\uD800']) {
      expect(describeDevice(userAgent)).toBe('Unknown device');
    }
  });

  it('handles a 5000-character agent quickly, reading only its first USER_AGENT_MAX characters', () => {
    expect(USER_AGENT_MAX).toBe(512);
    const started = performance.now();
    expect(describeDevice('A'.repeat(5000))).toBe('Unknown device');
    // A real agent followed by junk is still recognised from its beginning...
    expect(describeDevice(`${CHROME_MACOS}${' x'.repeat(2500)}`)).toBe('Chrome on macOS');
    // ...and tokens past the first 512 characters are never read.
    expect(describeDevice(`${'x'.repeat(USER_AGENT_MAX)}${FIREFOX_WINDOWS}`)).toBe('Unknown device');
    expect(describeDevice(`${'x'.repeat(USER_AGENT_MAX - FIREFOX_WINDOWS.length - 1)} ${FIREFOX_WINDOWS}`)).toBe('Firefox on Windows');
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('timeAgo', () => {
  const now = new Date('2025-06-15T12:00:00Z');
  const ago = (seconds: number) => timeAgo(new Date(now.getTime() - seconds * 1000), now);

  it('is "just now" under a minute, and for times in the future (clock skew)', () => {
    expect(ago(0)).toBe('just now');
    expect(ago(30)).toBe('just now');
    expect(ago(59)).toBe('just now');
    expect(ago(-10)).toBe('just now');
    expect(ago(-3600)).toBe('just now');
  });

  it('counts minutes and hours', () => {
    expect(ago(60)).toBe('1 minute ago');
    expect(ago(119)).toBe('1 minute ago');
    expect(ago(5 * 60)).toBe('5 minutes ago');
    expect(ago(3599)).toBe('59 minutes ago');
    expect(ago(3600)).toBe('1 hour ago');
    expect(ago(2 * 3600 + 59 * 60)).toBe('2 hours ago');
    expect(ago(86_399)).toBe('23 hours ago');
  });

  it('uses Intl numeric:auto wording for one day, week, month and year back', () => {
    const day = 86_400;
    expect(ago(day)).toBe('yesterday');
    expect(ago(2 * day - 1)).toBe('yesterday');
    expect(ago(2 * day)).toBe('2 days ago');
    expect(ago(3 * day)).toBe('3 days ago');
    expect(ago(6 * day)).toBe('6 days ago');
    expect(ago(7 * day)).toBe('last week');
    expect(ago(14 * day)).toBe('2 weeks ago');
    expect(ago(30 * day)).toBe('last month');
    expect(ago(60 * day)).toBe('2 months ago');
    expect(ago(365 * day)).toBe('last year');
    expect(ago(2 * 365 * day)).toBe('2 years ago');
  });

  it('defaults `now` to the current time', () => {
    expect(timeAgo(new Date())).toBe('just now');
    expect(timeAgo(new Date(Date.now() - 3 * 86_400_000))).toBe('3 days ago');
  });
});
