import { randomBytes } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  AuthenticatorTransport,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { z } from 'zod';
import type { MfaQueries, PasskeyRow } from './queries.ts';

/** A passkey as /account lists it. */
export interface PasskeyView {
  id: string;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
}

/** The browser's answer, as our script posts it (field `credential`): checked for shape before the library sees it. */
const responseShape = z.object({
  id: z.string().regex(/^[A-Za-z0-9_-]{1,1400}$/),
  rawId: z.string().max(1400),
  type: z.literal('public-key'),
  response: z.record(z.string(), z.unknown()),
  clientExtensionResults: z.record(z.string(), z.unknown()).default({}),
  authenticatorAttachment: z.string().max(40).optional(),
});

export class PasskeyRejected extends Error {}

function parseResponse(text: string): z.output<typeof responseShape> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new PasskeyRejected('the browser sent no passkey');
  }
  const parsed = responseShape.safeParse(json);
  if (!parsed.success) throw new PasskeyRejected('the browser sent no passkey');
  return parsed.data;
}

/** Loaded on first use: the library takes over a second to import, which no CLI command and no start should pay. */
let library: Promise<typeof import('@simplewebauthn/server')> | undefined;
const webauthn = () => (library ??= import('@simplewebauthn/server'));

const viewOf = (row: PasskeyRow): PasskeyView => ({ id: row.credential_id, name: row.name, createdAt: row.created_at, lastUsedAt: row.last_used_at });

/**
 * Passkeys (WebAuthn) with @simplewebauthn/server. The relying party is the issuer's host; every
 * ceremony requires user verification, so a passkey stands for two factors (sign-in-result.ts).
 * The challenge is made here and kept by the caller (webauthn-challenge.ts) until the answer comes;
 * an answer spends it (`spendChallenge`, on the server: once across every process), so a challenge is
 * answered once, whatever a browser sends again.
 */
export function createPasskeys(deps: { queries: MfaQueries; issuer: string; rpName: string; spendChallenge: (challenge: string) => Promise<boolean> }) {
  const { queries } = deps;
  const spend = async (challenge: string) => {
    if (!(await deps.spendChallenge(challenge))) throw new PasskeyRejected('that challenge was answered already');
  };
  const origin = new URL(deps.issuer).origin;
  const rpID = new URL(deps.issuer).hostname;

  return {
    async list(userId: string): Promise<PasskeyView[]> {
      return (await queries.passkeysOf(userId)).map(viewOf);
    },

    /** Options for navigator.credentials.create(): a discoverable credential, so it can sign in without an email. */
    async registrationOptions(user: { id: string; email: string; name: string }): Promise<PublicKeyCredentialCreationOptionsJSON> {
      const existing = await queries.passkeysOf(user.id);
      const { generateRegistrationOptions } = await webauthn();
      return generateRegistrationOptions({
        rpName: deps.rpName,
        rpID,
        userName: user.email,
        userDisplayName: user.name || user.email,
        userID: new TextEncoder().encode(user.id),
        attestationType: 'none',
        excludeCredentials: existing.map((row) => ({ id: row.credential_id, transports: row.transports })),
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      });
    },

    /** Checks the browser's new credential against the challenge and saves it under `name`. */
    async register(userId: string, responseText: string, expectedChallenge: string, name: string): Promise<PasskeyView> {
      const response = parseResponse(responseText) as unknown as RegistrationResponseJSON;
      await spend(expectedChallenge);
      const { verifyRegistrationResponse } = await webauthn();
      let verification: Awaited<ReturnType<typeof verifyRegistrationResponse>>;
      try {
        verification = await verifyRegistrationResponse({ response, expectedChallenge, expectedOrigin: origin, expectedRPID: rpID, requireUserVerification: true });
      } catch (error) {
        throw new PasskeyRejected((error as Error).message);
      }
      if (!verification.verified) throw new PasskeyRejected('the passkey could not be verified');
      const { credential } = verification.registrationInfo;
      if (await queries.findPasskey(credential.id)) throw new PasskeyRejected('that passkey is already registered');
      await queries.insertPasskey({
        credentialId: credential.id,
        userId,
        publicKey: Buffer.from(credential.publicKey).toString('base64url'),
        counter: credential.counter,
        transports: credential.transports ?? [],
        name,
      });
      return { id: credential.id, name, createdAt: new Date(), lastUsedAt: null };
    },

    /** Options for navigator.credentials.get(): any of the user's passkeys, or (no user) any discoverable one. */
    async authenticationOptions(userId?: string): Promise<PublicKeyCredentialRequestOptionsJSON> {
      const allow = userId ? await queries.passkeysOf(userId) : [];
      // Made here rather than by the library: every login page has these, and they are plain data.
      return {
        challenge: randomBytes(32).toString('base64url'),
        rpId: rpID,
        timeout: 60_000,
        userVerification: 'required',
        allowCredentials: allow.map((row) => ({ id: row.credential_id, type: 'public-key', transports: row.transports as AuthenticatorTransport[] })),
      };
    },

    /**
     * Checks an assertion: signed over the challenge by a registered passkey (of `userId`, when given)
     * with user verification. The user it belongs to; PasskeyRejected otherwise.
     */
    async authenticate(responseText: string, expectedChallenge: string, userId?: string): Promise<{ userId: string; credentialId: string }> {
      const response = parseResponse(responseText) as unknown as AuthenticationResponseJSON;
      await spend(expectedChallenge);
      const row = await queries.findPasskey(response.id);
      if (!row || (userId !== undefined && row.user_id !== userId)) throw new PasskeyRejected('that passkey is not registered here');
      const counter = Number(row.counter);
      const { verifyAuthenticationResponse } = await webauthn();
      let verification: Awaited<ReturnType<typeof verifyAuthenticationResponse>>;
      try {
        verification = await verifyAuthenticationResponse({
          response,
          expectedChallenge,
          expectedOrigin: origin,
          expectedRPID: rpID,
          credential: { id: row.credential_id, publicKey: Buffer.from(row.public_key, 'base64url'), counter, transports: row.transports },
          requireUserVerification: true,
        });
      } catch (error) {
        throw new PasskeyRejected((error as Error).message);
      }
      if (!verification.verified) throw new PasskeyRejected('the passkey could not be verified');
      if (!(await queries.passkeyUsed(row.credential_id, counter, verification.authenticationInfo.newCounter))) {
        throw new PasskeyRejected('the passkey was used at the same time elsewhere');
      }
      return { userId: row.user_id, credentialId: row.credential_id };
    },

    async remove(userId: string, credentialId: string): Promise<boolean> {
      return queries.deletePasskey(userId, credentialId);
    },
  };
}

export type Passkeys = ReturnType<typeof createPasskeys>;
