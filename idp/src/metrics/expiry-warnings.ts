import { rotationSchedule } from '@jobswipe/keystore';
import type { Logger } from '../logger.ts';
import { EXPIRY_WINDOWS, type StoreProbes } from './store-gauges.ts';

/** A warning that still holds is logged again this often, not at every check. */
const REPEAT_MS = 60 * 60 * 1000;

export interface ExpiryWatchOptions {
  /** How often to check (a minute by default; tests shorten it). */
  intervalMs?: number;
  /**
   * How far past its time a rotation may be before it counts as stuck: any process applies a due
   * rotation within KEYSTORE_POLL_SECONDS, so a few polls late means none is applying it.
   */
  overdueAfterSeconds: number;
  now?: () => Date;
}

/**
 * Warnings in the log for what the gauges show: the signing key past its rotation time (the
 * rotation is stuck: a held keystore lock, a KEK that no longer opens the keys) and client secrets
 * that expire within 7 days (`client_secret_expires_at`). Each is logged when it starts, then hourly.
 * The column data key sealed under the KEK has no expiry: nothing to warn about.
 */
export function watchExpiries(probes: Pick<StoreProbes, 'signingKeys' | 'clientSecretsExpiring' | 'rotationSeconds'>, log: Logger, options: ExpiryWatchOptions): { stop(): Promise<void>; check(): Promise<void> } {
  const now = options.now ?? (() => new Date());
  const lastWarned = new Map<string, number>();
  const warn = (key: string, fields: object, message: string) => {
    const at = now().getTime();
    const last = lastWarned.get(key);
    if (last !== undefined && at - last < REPEAT_MS) return;
    lastWarned.set(key, at);
    log.warn(fields, message);
  };

  const check = async () => {
    try {
      const schedule = rotationSchedule(await probes.signingKeys(), probes);
      const overdueSeconds = schedule ? (now().getTime() - schedule.rotatesAt.getTime()) / 1000 : 0;
      if (schedule && overdueSeconds > options.overdueAfterSeconds) {
        warn(
          'signing-key',
          { event: 'signing_key.rotation_overdue', kid: schedule.kid, rotatesAt: schedule.rotatesAt.toISOString(), overdueSeconds: Math.round(overdueSeconds) },
          'the signing key is past its rotation time: the scheduled rotation is not being applied (see docs/monitoring.md)',
        );
      } else {
        lastWarned.delete('signing-key');
      }
      const expiring = await probes.clientSecretsExpiring(EXPIRY_WINDOWS['7d']);
      for (const { clientId, expiresAt } of expiring) {
        warn(
          `client-secret:${clientId}`,
          { event: 'client_secret.expiring', clientId, expiresAt: expiresAt.toISOString() },
          expiresAt.getTime() <= now().getTime() ? 'a client secret has expired: rotate it' : 'a client secret expires within 7 days: rotate it',
        );
      }
      for (const key of lastWarned.keys()) {
        if (key.startsWith('client-secret:') && !expiring.some(({ clientId }) => key === `client-secret:${clientId}`)) lastWarned.delete(key);
      }
    } catch (error) {
      log.warn({ err: error }, 'expiry check failed');
    }
  };

  let checking: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    checking = checking.then(check);
  }, options.intervalMs ?? 60_000);
  timer.unref();
  return {
    /** No further checks; resolves once the one under way (if any) is done, before the stores close. */
    async stop() {
      clearInterval(timer);
      await checking;
    },
    check: () => (checking = checking.then(check)),
  };
}
