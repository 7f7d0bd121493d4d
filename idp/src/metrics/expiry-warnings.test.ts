import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '@jobswipe/keystore';
import { createLogger } from '../logger.ts';
import { watchExpiries } from './expiry-warnings.ts';

const HOUR = 60 * 60 * 1000;

/** A logger whose lines are kept, parsed. */
function capturedLog() {
  const lines: Array<{ level: number; event?: string; clientId?: string; msg: string }> = [];
  const log = createLogger('info', new Writable({ write: (chunk, _encoding, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  return { log, lines };
}

describe('watchExpiries', () => {
  it('warns when the rotation is overdue past the allowance, again only hourly, and afresh after it recovered', async () => {
    let now = new Date('2030-01-01T00:00:00Z');
    let keys: KeyRecord[] = [{ kid: 'k1', state: 'current', createdAt: now, activatesAt: new Date(now.getTime() - 1000 * 1000), retiresAt: null }];
    const { log, lines } = capturedLog();
    const watch = watchExpiries({ signingKeys: async () => keys, clientSecretsExpiring: async () => [], rotationSeconds: 900 }, log, { overdueAfterSeconds: 120, intervalMs: 3_600_000, now: () => now });
    const overdue = () => lines.filter((line) => line.event === 'signing_key.rotation_overdue');
    try {
      // 100 s past its time: within the allowance.
      await watch.check();
      expect(overdue()).toHaveLength(0);
      now = new Date(now.getTime() + 60_000);
      await watch.check();
      expect(overdue()).toHaveLength(1);
      expect(overdue()[0]!.level).toBe(40);
      now = new Date(now.getTime() + HOUR - 1);
      await watch.check();
      expect(overdue()).toHaveLength(1);
      now = new Date(now.getTime() + 1);
      await watch.check();
      expect(overdue()).toHaveLength(2);
      // Rotated: quiet; stuck again later: warned at once.
      keys = [{ ...keys[0]!, activatesAt: now }];
      await watch.check();
      keys = [{ ...keys[0]!, activatesAt: new Date(now.getTime() - 2000 * 1000) }];
      await watch.check();
      expect(overdue()).toHaveLength(3);
    } finally {
      await watch.stop();
    }
  });

  it('warns about each client secret expiring within 7 days, naming the client', async () => {
    const now = new Date('2030-01-01T00:00:00Z');
    const { log, lines } = capturedLog();
    const watch = watchExpiries(
      {
        signingKeys: async () => [],
        clientSecretsExpiring: async (seconds) => (seconds === 7 * 24 * 60 * 60 ? [{ clientId: 'svc', expiresAt: new Date(now.getTime() + HOUR) }, { clientId: 'old', expiresAt: new Date(now.getTime() - HOUR) }] : []),
        rotationSeconds: 900,
      },
      log,
      { overdueAfterSeconds: 120, intervalMs: 3_600_000, now: () => now },
    );
    try {
      await watch.check();
      await watch.check();
      const warned = lines.filter((line) => line.event === 'client_secret.expiring');
      expect(warned.map((line) => [line.clientId, line.msg])).toEqual([
        ['svc', 'a client secret expires within 7 days: rotate it'],
        ['old', 'a client secret has expired: rotate it'],
      ]);
    } finally {
      await watch.stop();
    }
  });
});
