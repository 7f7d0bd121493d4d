import * as oidc from 'openid-client';

/** A sign-in, refresh or sign-out that did not work; `message` is for the user. */
export class AuthError extends Error {
  readonly code: 'ERR_SIGNED_OUT' | 'ERR_SIGN_IN' | 'ERR_OFFLINE' | 'ERR_TIMEOUT';

  constructor(code: AuthError['code'], message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

/** The provider's OAuth error (code and description) or the error's message, for a sentence to the user. */
export function describeAuthFailure(error: unknown): string {
  if (error instanceof oidc.ResponseBodyError) return error.error_description ? `${error.error}: ${error.error_description}` : error.error;
  return error instanceof Error ? error.message : String(error);
}
