/**
 * What the hardware allows, measured in the same run: RS256 signatures per second with node:crypto on
 * one core (every token response signs at least once), and bcrypt cost-12 verifications per second
 * with the `bcrypt` package at the libuv threadpool's concurrency (every sign-in verifies once).
 */
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { availableParallelism } from 'node:os';
import bcrypt from 'bcrypt';

export interface Ceilings {
  rs256PerSecond: number;
  bcryptPerSecond: number;
  bcryptConcurrency: number;
  bcryptCost: number;
}

/** A tight loop of RS256 signatures (2048-bit key, a JWT-sized input) for about `seconds`. */
export function rs256PerSecond(seconds = 2): number {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const input = Buffer.from(randomBytes(240).toString('base64url'));
  for (let i = 0; i < 20; i += 1) sign('sha256', input, privateKey);
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let count = 0;
  while (performance.now() < deadline) {
    sign('sha256', input, privateKey);
    count += 1;
  }
  return count / ((performance.now() - start) / 1000);
}

/** The libuv threadpool's size: bcrypt's async work runs there. */
export const threadpoolSize = () => Number(process.env['UV_THREADPOOL_SIZE'] ?? 4) || 4;

/** bcrypt.compare at `cost`, `concurrency` at a time, for about `seconds` (every started one counts, to its end). */
export async function bcryptPerSecond(seconds = 3, cost = 12, concurrency = threadpoolSize()): Promise<number> {
  const password = randomBytes(12).toString('base64url');
  const hash = await bcrypt.hash(password, cost);
  const start = performance.now();
  const deadline = start + seconds * 1000;
  let count = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        if (!(await bcrypt.compare(password, hash))) throw new Error('bcrypt: the hash does not verify');
        count += 1;
      }
    }),
  );
  return count / ((performance.now() - start) / 1000);
}

export async function measureCeilings(seconds: number): Promise<Ceilings> {
  const rs256 = rs256PerSecond(Math.min(2, seconds));
  const concurrency = threadpoolSize();
  const bcryptRate = await bcryptPerSecond(seconds, 12, concurrency);
  return { rs256PerSecond: rs256, bcryptPerSecond: bcryptRate, bcryptConcurrency: concurrency, bcryptCost: 12 };
}

/** Cores, for the report: bcrypt can use at most this many at once, whatever the threadpool. */
export const cores = () => availableParallelism();
