import type { Context } from 'koa';
import type { ClientIp } from '../http/client-ip.ts';
import { RateLimited, type LoginLimits } from '../security/limits.ts';
import type { PasswordHasher } from './passwords.ts';
import type { User } from './queries.ts';

const WRONG_PASSWORD = 'That is not your current password. Nothing was changed.';

export type Reauthentication = { ok: true } | { ok: false; status: number; message: string; reason: 'wrong_password' | 'rate_limited' };

/**
 * Checks a user's password again (change password, delete account; the verification of an address,
 * signup/routes.ts) under the sign-in limits: counted before the password is looked at (refused when
 * the IP or the account is over them), and a wrong password counts as a failed sign-in.
 */
export async function reauthenticate(
  ctx: Context,
  deps: { clientIp: ClientIp; loginLimits: LoginLimits; hasher: PasswordHasher },
  user: User,
  password: string,
): Promise<Reauthentication> {
  let attempt: Awaited<ReturnType<LoginLimits['reserve']>>;
  try {
    attempt = await deps.loginLimits.reserve(deps.clientIp(ctx.req), user.email);
  } catch (error) {
    if (!(error instanceof RateLimited)) throw error;
    ctx.set(error.headers);
    return { ok: false, status: 429, message: error.message, reason: 'rate_limited' };
  }
  if (!(await deps.hasher.verify(password, user.password_hash))) {
    return { ok: false, status: 401, message: WRONG_PASSWORD, reason: 'wrong_password' };
  }
  await attempt.passed();
  return { ok: true };
}
