import type Provider from 'oidc-provider';
import { spendOnce } from './single-use.ts';

/**
 * How far from the server's clock a DPoP proof's `iat` may be (oidc-provider's CHALLENGE_OK_WINDOW,
 * five minutes either way): a proof is accepted until `iat` + this, and `iat` may itself be this far ahead.
 */
export const PROOF_IAT_WINDOW_SECONDS = 300;

const nowSeconds = () => Math.floor(Date.now() / 1000);

/**
 * Makes the provider's single-use check of a jti (DPoP proofs, RFC 9449 §11.1; client assertions,
 * RFC 7523 §3) hold under concurrency and for as long as the proof can be accepted.
 *
 * oidc-provider's ReplayDetection.unique looks the jti up, then saves it: concurrent requests carrying
 * one proof all pass (10 of 10 did, on Redis). Here the jti is spent (single-use.ts): exactly one
 * request with a given jti gets through.
 * And the jti is kept PROOF_IAT_WINDOW_SECONDS longer than the provider asks: a proof whose `iat` is up
 * to five minutes ahead stays acceptable for up to ten, and must not be forgotten before then.
 */
export function installAtomicReplayDetection(provider: Provider): void {
  const model = provider.ReplayDetection;
  const adapter = model.adapter;
  model.unique = async function unique(iss: string, jti: string, exp: number): Promise<boolean> {
    // Kept under the provider's own id (a hash of issuer and jti), so a record means the same to both.
    return spendOnce(adapter, `${iss}${jti}`, Math.max(exp - nowSeconds(), 0) + PROOF_IAT_WINDOW_SECONDS);
  };
}
