import { HttpError } from '../http/errors.ts';
import { countFailure, failClosed, limiter, LOGIN_LIMITS, type LoginLimitStore } from './login-limits.ts';

/**
 * Wrong device codes allowed per client IP and window, like failed sign-ins (RFC 8628 §5.1: user
 * codes are short, so guessing must be rate-limited). A right code does not clear the count: anyone
 * can start a device authorization and get a right code of their own to enter.
 */
export const DEVICE_CODE_LIMITS = { ip: LOGIN_LIMITS.ip } as const;

export class DeviceCodeLimited extends HttpError {
  readonly retryAfterSeconds: number;

  constructor(msBeforeNext: number) {
    const seconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    const minutes = Math.ceil(seconds / 60);
    super(
      429,
      'Too many wrong codes',
      `Too many wrong codes were entered from your network. Try again in ${minutes === 1 ? '1 minute' : `${minutes} minutes`}.`,
      { 'Retry-After': String(seconds) },
    );
    this.retryAfterSeconds = seconds;
  }
}

/** A store outage refuses the page (503): the limit fails closed, as the sign-in limits do. */
export function createDeviceCodeLimits(store: LoginLimitStore) {
  const byIp = limiter(store, 'device-code-ip', DEVICE_CODE_LIMITS.ip);

  const guarded = <T>(operation: () => Promise<T>) =>
    failClosed(
      operation,
      (error) => error instanceof HttpError,
      () => new HttpError(503, 'Briefly unavailable', 'JobSwipe could not check this code right now. Wait a minute, then try again.'),
    );

  return {
    async check(ip: string): Promise<void> {
      await guarded(async () => {
        const state = await byIp.get(ip);
        if (state && state.consumedPoints >= DEVICE_CODE_LIMITS.ip.points) throw new DeviceCodeLimited(state.msBeforeNext);
      });
    },
    async failed(ip: string): Promise<void> {
      await guarded(() => countFailure(byIp, ip));
    },
  };
}

export type DeviceCodeLimits = ReturnType<typeof createDeviceCodeLimits>;
