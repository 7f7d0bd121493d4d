import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { LIMITS, limitsTable, RateLimited } from './limits.ts';

describe('the rate limits table', () => {
  it('is the one docs/security.md shows', async () => {
    const docs = await readFile(new URL('../../../docs/security.md', import.meta.url), 'utf8');
    expect(docs, 'regenerate the table with limitsTable() (idp/src/security/limits.ts)').toContain(limitsTable());
  });

  it('words each refusal as the pages and token endpoints always have', () => {
    expect(new RateLimited('login-ip', 15 * 60 * 1000).message).toBe(
      'There were too many failed attempts to sign in from your network. Try again in 15 minutes. If you forgot your password, wait and try again; nothing has been changed.',
    );
    expect(new RateLimited('login-account', 30_000).message).toContain('to this account. Try again in 1 minute.');
    expect(new RateLimited('signup-ip', 600_000)).toMatchObject({ status: 429, title: 'Too many sign-ups', headers: { 'Retry-After': '600' } });
    expect(new RateLimited('token-requests', 1500)).toMatchObject({ message: 'this client made too many requests; try again in 2 seconds', retryAfterSeconds: 2, reported: 'requests' });
    for (const name of Object.keys(LIMITS) as Array<keyof typeof LIMITS>) expect(new RateLimited(name, 0).retryAfterSeconds).toBe(1);
  });
});
