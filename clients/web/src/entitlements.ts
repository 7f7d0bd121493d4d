import { z } from 'zod';
import { discover } from './discovery';
import type { Settings } from './settings';

/** The `plan` and `entitlements` claims the provider answers for the scope `entitlements` (docs/usage.md). */
const claimsSchema = z.object({
  plan: z.string().min(1).max(64),
  entitlements: z.object({
    limits: z.record(z.string().max(64), z.number().int().min(0)),
    desktop_devices: z.number().int().min(0),
    features: z.array(z.string().max(64)),
  }),
});

export type Entitlements = z.infer<typeof claimsSchema>;

/**
 * The user's plan as the provider knows it now: read from userinfo with the session's access token at
 * each render, so a plan change shows without signing in again. Undefined when the provider cannot
 * answer (the dashboard then says so); never throws.
 */
export async function currentEntitlements(settings: Settings, accessToken: string): Promise<Entitlements | undefined> {
  try {
    const { metadata } = await discover(settings.issuer);
    if (!metadata.userinfo_endpoint) return undefined;
    const response = await fetch(metadata.userinfo_endpoint, {
      headers: { authorization: `Bearer ${accessToken}`, accept: 'application/json' },
      signal: AbortSignal.timeout(5_000),
      cache: 'no-store',
    });
    if (!response.ok) {
      console.warn(`jobswipe-web: userinfo answered ${response.status}`);
      return undefined;
    }
    const parsed = claimsSchema.safeParse(await response.json());
    if (!parsed.success) {
      console.warn('jobswipe-web: userinfo has no valid plan claims (is the entitlements scope granted?)');
      return undefined;
    }
    return parsed.data;
  } catch (error) {
    console.warn(`jobswipe-web: cannot read the plan: ${(error as Error).message}`);
    return undefined;
  }
}
