import { rotationSchedule, type KeyRecord } from '@jobswipe/keystore';
import type { Metrics } from './registry.ts';

/** The windows `jobswipe_refresh_tokens_expiring{within}` and `jobswipe_client_secrets_expiring{within}` report. */
export const EXPIRY_WINDOWS = { '24h': 24 * 60 * 60, '7d': 7 * 24 * 60 * 60 } as const;

/** One store read bounded in time: a scrape answers even while a store hangs. */
const PROBE_TIMEOUT_MS = 2_000;

/** What the gauges read, each from the stores of this process. */
export interface StoreProbes {
  databaseUp(): Promise<boolean>;
  /** Undefined without Redis. */
  redisUp: (() => Promise<boolean>) | undefined;
  activeSessions(): Promise<number>;
  refreshTokensExpiring(seconds: number): Promise<number>;
  /** Clients whose secret expires within `seconds` (or has expired). */
  clientSecretsExpiring(seconds: number): Promise<Array<{ clientId: string; expiresAt: Date }>>;
  auditSealLag(): Promise<number>;
  signingKeys(): Promise<KeyRecord[]>;
  /** KEY_ROTATION_SECONDS. */
  rotationSeconds: number;
}

function bounded<T>(read: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out')), PROBE_TIMEOUT_MS);
  });
  return Promise.race([read(), timeout]).finally(() => clearTimeout(timer));
}

/**
 * Sets the gauges read from the stores; called before each scrape. A read that fails or times out
 * leaves its gauge as it was (the store's `jobswipe_store_up` says why), so one slow store never
 * makes the whole scrape fail.
 */
export function storeGauges(metrics: Metrics, probes: StoreProbes, now: () => Date = () => new Date()): () => Promise<void> {
  const read = <T>(probe: () => Promise<T>, set: (value: T) => void) =>
    bounded(probe).then(set, () => {});
  return async () => {
    await Promise.all([
      read(probes.databaseUp, (up) => metrics.storeUp.set({ store: 'database' }, up ? 1 : 0)),
      probes.redisUp ? read(probes.redisUp, (up) => metrics.storeUp.set({ store: 'redis' }, up ? 1 : 0)) : undefined,
      read(probes.activeSessions, (count) => metrics.activeSessions.set(count)),
      read(probes.auditSealLag, (seconds) => metrics.auditSealLag.set(seconds)),
      ...Object.entries(EXPIRY_WINDOWS).flatMap(([within, seconds]) => [
        read(() => probes.refreshTokensExpiring(seconds), (count) => metrics.refreshTokensExpiring.set({ within }, count)),
        read(() => probes.clientSecretsExpiring(seconds), (clients) => metrics.clientSecretsExpiring.set({ within }, clients.length)),
      ]),
      read(probes.signingKeys, (keys) => {
        const schedule = rotationSchedule(keys, probes);
        if (!schedule) return;
        const at = now().getTime();
        metrics.signingKeyAge.set((at - schedule.signingSince.getTime()) / 1000);
        metrics.signingKeyNextRotation.set((schedule.rotatesAt.getTime() - at) / 1000);
      }),
    ]);
  };
}
