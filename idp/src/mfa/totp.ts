import type { ValueCipher } from '@jobswipe/adapters';
import { generateSecret, generateURI, verify } from 'otplib';
import QRCode from 'qrcode';
import type { MfaQueries } from './queries.ts';
import { hashRecoveryCode, isAppCode, newRecoveryCodes } from './recovery-codes.ts';

/** How long a set-up waits for its first code. */
const SETUP_MINUTES = 15;
/** A code of the step before or after now is accepted too (clocks drift; typing takes time). */
const TOLERANCE_SECONDS = 30;

/** What the set-up page shows: the secret as text, and the same as a QR code drawn here (an SVG data URL). */
export interface TotpSetup {
  secret: string;
  uri: string;
  qrCode: string;
}

/** The outcome of a code at sign-in: which kind was right, or why it was not accepted. */
export type CodeCheck =
  | { ok: true; method: 'otp' }
  | { ok: true; method: 'recovery_code'; remaining: number }
  | { ok: false; reason: 'wrong_code' | 'reused_code' };

export class TotpRefused extends Error {}

const sealContext = (userId: string) => `totp secret of ${userId}`;

/** The authenticator app (RFC 6238, 6 digits, 30 s) and its recovery codes. */
export function createTotp(deps: { queries: MfaQueries; secrets: ValueCipher; issuerName: string }) {
  const { queries } = deps;

  async function setupOf(email: string, secret: string): Promise<TotpSetup> {
    const uri = generateURI({ issuer: deps.issuerName, label: email, secret });
    const svg = await QRCode.toString(uri, { type: 'svg', errorCorrectionLevel: 'M', margin: 2 });
    return { secret, uri, qrCode: `data:image/svg+xml;base64,${Buffer.from(svg).toString('base64')}` };
  }

  /** The secret, or undefined when the sealed value does not open (the row was altered or moved: logged by the cipher). */
  async function openSecret(userId: string, sealed: string): Promise<string | undefined> {
    try {
      return await deps.secrets.open(sealed, sealContext(userId));
    } catch {
      return undefined;
    }
  }

  /** The time step of a right code not accepted before (and now spent); undefined otherwise. */
  async function matchingStep(secret: string, code: string, after: number | null): Promise<number | 'reused' | undefined> {
    const token = code.replace(/\s/g, '');
    const result = await verify({ secret, token, epochTolerance: TOLERANCE_SECONDS });
    if (!result.valid || !('timeStep' in result)) return undefined;
    return after !== null && result.timeStep <= after ? 'reused' : result.timeStep;
  }

  return {
    /** Starts a set-up: a new secret, kept sealed until the first code turns it on. */
    async beginSetup(user: { id: string; email: string }): Promise<TotpSetup> {
      const secret = generateSecret();
      const saved = await queries.savePendingTotp(user.id, await deps.secrets.seal(secret, sealContext(user.id)));
      if (!saved) throw new TotpRefused('Your authenticator app is already on.');
      return setupOf(user.email, secret);
    },

    /** The set-up under way (to show again after a wrong code), if it has not expired. */
    async pendingSetup(user: { id: string; email: string }, now = new Date()): Promise<TotpSetup | undefined> {
      const factor = await queries.totpOf(user.id);
      if (!factor || factor.enabled_at || now.getTime() - factor.created_at.getTime() > SETUP_MINUTES * 60_000) return undefined;
      const secret = await openSecret(user.id, factor.secret_sealed);
      return secret === undefined ? undefined : setupOf(user.email, secret);
    },

    /** Turns the app on with its first code; the recovery codes, shown once. Undefined: wrong code or no set-up. */
    async enable(user: { id: string; email: string }, code: string): Promise<string[] | undefined> {
      const pending = await this.pendingSetup(user);
      if (!pending || !isAppCode(code)) return undefined;
      const step = await matchingStep(pending.secret, code, null);
      if (typeof step !== 'number' || !(await queries.acceptTimeStep(user.id, step, { enable: true }))) return undefined;
      const codes = newRecoveryCodes();
      await queries.replaceRecoveryCodes(user.id, codes.map(hashRecoveryCode));
      return codes;
    },

    /** Whether the user's app is on. */
    async enabled(userId: string): Promise<boolean> {
      return Boolean((await queries.totpOf(userId))?.enabled_at);
    },

    /**
     * Checks a code from the app (each one works once) or a recovery code (each one works once). The
     * caller counts the attempt against the sign-in limits first.
     */
    async check(userId: string, code: string): Promise<CodeCheck> {
      if (isAppCode(code)) {
        const factor = await queries.totpOf(userId);
        if (!factor?.enabled_at) return { ok: false, reason: 'wrong_code' };
        const secret = await openSecret(userId, factor.secret_sealed);
        if (secret === undefined) return { ok: false, reason: 'wrong_code' };
        const step = await matchingStep(secret, code, factor.last_time_step);
        if (step === undefined) return { ok: false, reason: 'wrong_code' };
        // A concurrent use of the same code loses here: the step moved on under it.
        if (step === 'reused' || !(await queries.acceptTimeStep(userId, step))) return { ok: false, reason: 'reused_code' };
        return { ok: true, method: 'otp' };
      }
      if (code.length > 64 || !(await queries.spendRecoveryCode(userId, hashRecoveryCode(code)))) return { ok: false, reason: 'wrong_code' };
      return { ok: true, method: 'recovery_code', remaining: await queries.unusedRecoveryCodes(userId) };
    },

    /** Removes the app and its recovery codes. */
    async disable(userId: string): Promise<boolean> {
      const removed = await queries.deleteTotp(userId);
      await queries.deleteRecoveryCodes(userId);
      return removed;
    },
  };
}

export type Totp = ReturnType<typeof createTotp>;
