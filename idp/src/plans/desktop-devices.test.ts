import { describe, expect, it } from 'vitest';
import type { DesktopDevice } from '../sessions/service.ts';
import { createDesktopDevices, deviceLimitMessage } from './desktop-devices.ts';
import type { Plan } from './service.ts';

const plan = (desktop_devices: number, name = 'Free'): Plan => ({ id: name.toLowerCase(), name, limits: {}, desktop_devices, features: [] });
const device = (grantId: string): DesktopDevice => ({ grantId, clientId: 'desktop', clientName: 'JobSwipe Desktop', since: new Date('2031-01-01T00:00:00Z') });

describe('deviceLimitMessage', () => {
  it('names the plan and the number, "device" only for one', () => {
    expect(deviceLimitMessage(plan(1))).toBe('Your Free plan allows 1 desktop device');
    expect(deviceLimitMessage(plan(3, 'Pro'))).toBe('Your Pro plan allows 3 desktop devices');
    expect(deviceLimitMessage(plan(0, 'Solo'))).toBe('Your Solo plan allows 0 desktop devices');
  });
});

describe('allowance', () => {
  const devicesOf = (devices: DesktopDevice[]) => createDesktopDevices({ planOf: async () => plan(2), devicesOf: async () => devices });

  it('has room while fewer devices than the plan allows are in use', async () => {
    expect(await devicesOf([device('a')]).allowance('user')).toMatchObject({ inUse: 1, roomForAnother: true });
    expect(await devicesOf([device('a'), device('b')]).allowance('user')).toMatchObject({ inUse: 2, roomForAnother: false });
  });

  it('leaves out the grant named by except (the one just made)', async () => {
    const allowance = await devicesOf([device('a'), device('b')]).allowance('user', { except: 'b' });
    expect(allowance).toMatchObject({ inUse: 1, roomForAnother: true });
    expect(allowance.devices.map((entry) => entry.grantId)).toEqual(['a']);
  });
});
