import { describe, expect, it } from 'vitest';
import type { KeyRecord } from '@jobswipe/keystore';
import { createMetrics } from './registry.ts';
import { storeGauges, type StoreProbes } from './store-gauges.ts';

const NOW = new Date('2030-01-01T00:00:00Z');
const DAY = 24 * 60 * 60;

function probes(overrides: Partial<StoreProbes> = {}): StoreProbes {
  const keys: KeyRecord[] = [{ kid: 'k1', state: 'current', createdAt: new Date(NOW.getTime() - 3 * DAY * 1000), activatesAt: new Date(NOW.getTime() - 2 * DAY * 1000), retiresAt: null }];
  return {
    databaseUp: async () => true,
    redisUp: async () => true,
    activeSessions: async () => 7,
    refreshTokensExpiring: async (seconds) => (seconds === DAY ? 1 : 4),
    clientSecretsExpiring: async (seconds) => (seconds === DAY ? [] : [{ clientId: 'svc', expiresAt: NOW }]),
    auditSealLag: async () => 0.5,
    signingKeys: async () => keys,
    rotationSeconds: 30 * DAY,
    ...overrides,
  };
}

const value = async (metrics: ReturnType<typeof createMetrics>, name: string, labels: Record<string, string> = {}) =>
  (await metrics.registry.getSingleMetric(name)!.get()).values.find((one) => Object.entries(labels).every(([key, wanted]) => one.labels[key] === wanted))?.value;

describe('storeGauges', () => {
  it('sets every gauge from its probe, the key schedule from the keys and the clock', async () => {
    const metrics = createMetrics();
    await storeGauges(metrics, probes(), () => NOW)();
    expect(await value(metrics, 'jobswipe_store_up', { store: 'database' })).toBe(1);
    expect(await value(metrics, 'jobswipe_store_up', { store: 'redis' })).toBe(1);
    expect(await value(metrics, 'jobswipe_active_sessions')).toBe(7);
    expect(await value(metrics, 'jobswipe_refresh_tokens_expiring', { within: '24h' })).toBe(1);
    expect(await value(metrics, 'jobswipe_refresh_tokens_expiring', { within: '7d' })).toBe(4);
    expect(await value(metrics, 'jobswipe_client_secrets_expiring', { within: '24h' })).toBe(0);
    expect(await value(metrics, 'jobswipe_client_secrets_expiring', { within: '7d' })).toBe(1);
    expect(await value(metrics, 'jobswipe_audit_seal_lag_seconds')).toBe(0.5);
    expect(await value(metrics, 'jobswipe_signing_key_age_seconds')).toBe(2 * DAY);
    expect(await value(metrics, 'jobswipe_signing_key_next_rotation_seconds')).toBe(28 * DAY);
  });

  it('a probe that fails or hangs leaves its gauge as it was, and the others are still set', async () => {
    const metrics = createMetrics();
    await storeGauges(metrics, probes(), () => NOW)();
    const started = Date.now();
    await storeGauges(
      metrics,
      probes({
        databaseUp: async () => false,
        activeSessions: () => new Promise<number>(() => {}),
        auditSealLag: async () => {
          throw new Error('connection refused');
        },
        redisUp: undefined,
      }),
      () => NOW,
    )();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await value(metrics, 'jobswipe_store_up', { store: 'database' })).toBe(0);
    expect(await value(metrics, 'jobswipe_active_sessions')).toBe(7);
    expect(await value(metrics, 'jobswipe_audit_seal_lag_seconds')).toBe(0.5);
  }, 10_000);

  it('reports an overdue rotation as negative time to the next one', async () => {
    const metrics = createMetrics();
    await storeGauges(metrics, probes({ rotationSeconds: DAY }), () => NOW)();
    expect(await value(metrics, 'jobswipe_signing_key_next_rotation_seconds')).toBe(-DAY);
  });
});
