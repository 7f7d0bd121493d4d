import * as oidc from 'openid-client';
import { AuthError, describeAuthFailure } from './auth-error.ts';
import type { SignInTokens } from './browser-sign-in.ts';

export interface DeviceCodePrompt {
  verificationUri: string;
  verificationUriComplete?: string | undefined;
  userCode: string;
  expiresIn: number;
}

export interface DeviceSignInOptions {
  onCode: (prompt: DeviceCodePrompt) => void | Promise<void>;
  signal?: AbortSignal;
}

/** The device authorization grant (RFC 8628): `onCode` shows the user where to go and what to enter. */
export async function signInWithDeviceCode<T>(
  config: oidc.Configuration,
  scope: string,
  options: DeviceSignInOptions,
  accept: (tokens: SignInTokens) => Promise<T>,
): Promise<T> {
  const device = await oidc.initiateDeviceAuthorization(config, { scope });
  await options.onCode({
    verificationUri: device.verification_uri,
    verificationUriComplete: device.verification_uri_complete,
    userCode: device.user_code,
    expiresIn: device.expires_in,
  });
  try {
    const tokens = await oidc.pollDeviceAuthorizationGrant(config, device, undefined, options.signal ? { signal: options.signal } : {});
    return await accept(tokens);
  } catch (error) {
    if (error instanceof AuthError) throw error;
    if (error instanceof oidc.ResponseBodyError && error.error === 'expired_token') {
      throw new AuthError('ERR_TIMEOUT', 'Sign-in timed out: the code expired before it was entered.', { cause: error });
    }
    if ((error as Error).name === 'AbortError' || (error as Error).name === 'TimeoutError') {
      throw new AuthError('ERR_TIMEOUT', 'Sign-in timed out: the code was not entered in time.', { cause: error });
    }
    throw new AuthError('ERR_SIGN_IN', `Sign-in failed: ${describeAuthFailure(error)}.`, { cause: error });
  }
}
