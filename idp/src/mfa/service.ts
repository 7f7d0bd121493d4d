import type { Context } from 'koa';
import { administratorEvent } from '../audit/administrator.ts';
import type { RecordEvent } from '../audit/record-event.ts';
import { loginResult, requiresMfa, type AuthenticationMethod, type LoginResult } from '../interactions/sign-in-result.ts';
import type { MfaQueries } from './queries.ts';
import type { Passkeys, PasskeyView } from './passkeys.ts';
import { rememberFirstStep } from './pending-sign-in.ts';
import type { Totp } from './totp.ts';
import { keepChallenge } from './webauthn-challenge.ts';

/** Which factors a user has: what the second-factor page offers, and whether it is asked for at all. */
export interface FactorStatus {
  totp: boolean;
  recoveryCodes: number;
  passkeys: number;
}

/** After the first step of a sign-in: finish it, or send the browser to its second step. */
export type NextStep = { login: LoginResult } | { redirectTo: string };

/** The interaction as the sign-in steps need it (oidc-provider's interaction details). */
export interface InteractionFacts {
  uid: string;
  params: Record<string, unknown>;
  /** Seconds the provider keeps the interaction. */
  lifetimeSeconds: number;
}

export function createMfaService(deps: { queries: MfaQueries; totp: Totp; passkeys: Passkeys; recordEvent: RecordEvent }) {
  const { queries } = deps;

  async function status(userId: string): Promise<FactorStatus> {
    return queries.factorCounts(userId);
  }

  return {
    status,

    /**
     * The one decision every first step (a password, an upstream identity provider) goes through: a
     * user with a factor (authenticator app or passkey) gives it next; a user without one whose app
     * insists on two factors (acr_values, sign-in-result.ts) sets one up; anyone else is signed in.
     */
    async afterFirstStep(ctx: Context, interaction: InteractionFacts, accountId: string, amr: AuthenticationMethod[]): Promise<NextStep> {
      const factors = await status(accountId);
      const hasFactor = factors.totp || factors.passkeys > 0;
      if (!hasFactor && !requiresMfa(interaction.params['acr_values'])) return { login: loginResult(accountId, amr) };
      rememberFirstStep(ctx, { uid: interaction.uid, accountId, amr }, interaction.lifetimeSeconds);
      return { redirectTo: `/interaction/${interaction.uid}/${hasFactor ? 'second-factor' : 'enrol'}` };
    },

    /**
     * A signed-in session that an app asks for two factors (acr_values): a user with a factor gives it
     * now, without the password again. Undefined when the password is needed first (no factor: setting
     * one up during a sign-in needs the password, not just a session).
     */
    async stepUp(ctx: Context, interaction: InteractionFacts, session: { accountId: string; amr?: string[] | undefined }): Promise<string | undefined> {
      const factors = await status(session.accountId);
      if (!factors.totp && factors.passkeys === 0) return undefined;
      const amr = (session.amr ?? ['pwd']).filter((method): method is AuthenticationMethod => method === 'pwd' || method === 'fed');
      rememberFirstStep(ctx, { uid: interaction.uid, accountId: session.accountId, amr: amr.length > 0 ? amr : ['pwd'] }, interaction.lifetimeSeconds);
      return `/interaction/${interaction.uid}/second-factor`;
    },

    /** What /account's two-factor section shows; its passkey form's challenge is kept in this browser. */
    async accountView(ctx: Context, user: { id: string; email: string; name: string }): Promise<{ status: FactorStatus; passkeys: PasskeyView[]; registration: unknown }> {
      const [factors, passkeys, registration] = await Promise.all([status(user.id), deps.passkeys.list(user.id), deps.passkeys.registrationOptions(user)]);
      keepChallenge(ctx, 'register', user.id, registration.challenge);
      return { status: factors, passkeys, registration };
    },

    /** The login page's passkey button: options for any discoverable passkey, the challenge kept for this interaction. */
    async passkeySignInOptions(ctx: Context, uid: string): Promise<unknown> {
      const options = await deps.passkeys.authenticationOptions();
      keepChallenge(ctx, 'authenticate', uid, options.challenge);
      return options;
    },

    /** `idp users mfa-reset`: every factor of a user who lost their device goes (audited). */
    async reset(userId: string): Promise<{ totp: boolean; recoveryCodes: number; passkeys: number }> {
      const totp = await queries.deleteTotp(userId);
      const recoveryCodes = await queries.deleteRecoveryCodes(userId);
      const passkeys = await queries.deletePasskeys(userId);
      await deps.recordEvent(administratorEvent('admin.mfa_reset', { userId, details: { totp, recovery_codes: recoveryCodes, passkeys } }));
      return { totp, recoveryCodes, passkeys };
    },
  };
}

export type MfaService = ReturnType<typeof createMfaService>;
