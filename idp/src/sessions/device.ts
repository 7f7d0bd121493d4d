import Bowser from 'bowser';

/** Longest user agent kept; real ones are a few hundred characters. */
export const USER_AGENT_MAX = 512;

/**
 * How a session's browser is shown to its owner: "Chrome on macOS", "Safari on iOS", or a fallback
 * for clients that are not browsers ("Unknown browser on Linux", "Unknown device").
 */
export function describeDevice(userAgent: string): string {
  const ua = userAgent.trim().slice(0, USER_AGENT_MAX);
  if (ua === '') return 'Unknown device';
  let browser = '';
  let os = '';
  try {
    const parsed = Bowser.parse(ua);
    browser = parsed.browser.name ?? '';
    os = parsed.os.name ?? '';
  } catch {
    // An agent string the parser cannot read is still shown, as unknown.
  }
  if (browser && os) return `${browser} on ${os}`;
  if (browser) return browser;
  if (os) return `Unknown browser on ${os}`;
  return 'Unknown device';
}

const UNITS: Array<[Intl.RelativeTimeFormatUnit, number]> = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
];

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto' });

/** "3 days ago", "5 minutes ago", "just now". */
export function timeAgo(then: Date, now: Date = new Date()): string {
  const seconds = Math.round((now.getTime() - then.getTime()) / 1000);
  if (seconds < 60) return 'just now';
  for (const [unit, size] of UNITS) {
    if (seconds >= size) return relative.format(-Math.floor(seconds / size), unit);
  }
  return 'just now';
}
