import { createHash } from 'node:crypto';
import type { Adapter } from 'oidc-provider';
import { AlreadyConsumedError } from '@jobswipe/adapters';

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The id a single-use value is kept under: a hash, so the store never holds the value itself. */
const singleUseId = (value: string) => createHash('sha256').update(value).digest('base64url');

/**
 * Spends `value` once, across every process: true the first time, false for as long as it is kept
 * (`keepSeconds`). The record is saved, then consumed: the adapter's consume is atomic in Redis and
 * in the database (a save keeps an earlier consumption), so of concurrent or repeated spends exactly
 * one gets true. Kept under the provider's ReplayDetection model, as the jti of a proof is.
 */
export async function spendOnce(adapter: Adapter, value: string, keepSeconds: number): Promise<boolean> {
  const id = singleUseId(value);
  const now = nowSeconds();
  await adapter.upsert(id, { jti: id, kind: 'ReplayDetection', iat: now, exp: now + keepSeconds }, keepSeconds);
  try {
    await adapter.consume(id);
  } catch (error) {
    if (error instanceof AlreadyConsumedError) return false;
    throw error;
  }
  return true;
}
