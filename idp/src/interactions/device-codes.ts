import type { IncomingMessage } from 'node:http';
import { requestScope } from '../http/request-scope.ts';

/**
 * What the user-code page of the device authorization grant says and where it is: shared by our
 * device route (interactions/device.ts) and the provider's page hooks (provider/configuration.ts).
 */

/** The provider's code_verification route (its default), where the device pages post. */
export const DEVICE_PATH = '/device';

export const WRONG_CODE = 'That code is not right. Check the code shown on your device and try again.';
export const EXPIRED_CODE = 'This code has expired. Start signing in again on your device to get a new code.';
export const USED_CODE = 'This code has already been used. Start signing in again on your device to get a new code.';
const CANCELLED = 'You cancelled, and the device was not signed in. You can close this window.';
const START_AGAIN = 'This sign-in could not be completed. Start signing in again on your device.';

/** The code from verification_uri_complete, to show in the form (never submitted without a click). */
export function prefilledUserCode(req: IncomingMessage): string | undefined {
  return requestScope(req).prefilledUserCode;
}

/** What the code page says about an error the provider reports on it. */
export function deviceCodeError(error: Error): string {
  switch (error.name) {
    case 'NotFoundError':
    case 'NoCodeError':
      return WRONG_CODE;
    case 'ExpiredError':
      return EXPIRED_CODE;
    case 'AlreadyUsedError':
      return USED_CODE;
    case 'AbortedError':
      return CANCELLED;
    default:
      return START_AGAIN;
  }
}
