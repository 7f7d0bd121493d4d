import type { DesktopDevice } from '../sessions/service.ts';
import type { Plan } from './service.ts';

/** What the user sees when a plan allows no more desktop sign-ins: "Your Free plan allows 1 desktop device". */
export function deviceLimitMessage(plan: Pick<Plan, 'name' | 'desktop_devices'>): string {
  const devices = plan.desktop_devices === 1 ? 'device' : 'devices';
  return `Your ${plan.name} plan allows ${plan.desktop_devices} desktop ${devices}`;
}

/** The user's desktop devices against their plan: `inUse` of `plan.desktop_devices`. */
export interface DeviceAllowance {
  plan: Plan;
  devices: DesktopDevice[];
  inUse: number;
  /** Whether one more desktop sign-in fits the plan. */
  roomForAnother: boolean;
}

export interface DesktopDeviceDependencies {
  planOf: (userId: string) => Promise<Plan>;
  /** The user's live desktop sign-ins (grants of native clients), read as the user. */
  devicesOf: (userId: string) => Promise<DesktopDevice[]>;
}

/**
 * A plan's desktop_devices: how many desktop sign-ins (live grants of native clients) a user holds at
 * once. Checked before a new grant of a native client is made (at consent, for sign-ins in the browser
 * and by device code); a device whose grant already exists is not a new one.
 */
export function createDesktopDevices(deps: DesktopDeviceDependencies) {
  return {
    /**
     * The user's devices and plan. `except` leaves one grant out of the count: the grant just made,
     * when checking that it fits after the fact.
     */
    async allowance(userId: string, options: { except?: string } = {}): Promise<DeviceAllowance> {
      const [plan, all] = await Promise.all([deps.planOf(userId), deps.devicesOf(userId)]);
      const devices = options.except === undefined ? all : all.filter((device) => device.grantId !== options.except);
      return { plan, devices, inUse: devices.length, roomForAnother: devices.length < plan.desktop_devices };
    },
  };
}

export type DesktopDevices = ReturnType<typeof createDesktopDevices>;
