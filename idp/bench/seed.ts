import { randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';

/** The seed every target is given (docs/cli.md's format): the web app, a service client, users. */
export interface Seed {
  /** Ours only (the bare provider has no plans): one plan whose limit no run reaches. */
  plans: Array<{ id: string; name: string; limits: Record<string, number>; desktop_devices: number; features: string[] }>;
  clients: Array<Record<string, unknown> & { client_id: string; client_secret: string }>;
  users: Array<{ email: string; name: string; password_hash: string; email_verified: boolean; plan: string }>;
}

export const WEB_CLIENT = 'bench-web';
export const SERVICE_CLIENT = 'bench-service';
/** The service that records usage (ours only: the bare provider has no usage API and leaves it out). */
export const METER_CLIENT = 'bench-meter';
export const BENCH_PLAN = 'bench-unlimited';
export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const USERS = 16;

export interface Credentials {
  seed: Seed;
  password: string;
  webSecret: string;
  serviceSecret: string;
  meterSecret: string;
}

/** One password (bcrypt at the product's default cost, 12) shared by every user: one hash to compute. */
export async function createSeed(cost = 12): Promise<Credentials> {
  const password = `Bench-${randomBytes(12).toString('base64url')}`;
  const hash = await bcrypt.hash(password, cost);
  const webSecret = randomBytes(32).toString('base64url');
  const serviceSecret = randomBytes(32).toString('base64url');
  const meterSecret = randomBytes(32).toString('base64url');
  const seed: Seed = {
    plans: [{ id: BENCH_PLAN, name: 'Benchmark', limits: { applications: 1_000_000_000 }, desktop_devices: 1, features: [] }],
    clients: [
      {
        client_id: WEB_CLIENT,
        client_secret: webSecret,
        client_name: 'Benchmark web app',
        redirect_uris: [REDIRECT_URI],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        first_party: true,
      },
      {
        client_id: SERVICE_CLIENT,
        client_secret: serviceSecret,
        client_name: 'Benchmark service',
        redirect_uris: [],
        response_types: [],
        grant_types: ['client_credentials'],
        scope: 'api:read',
      },
      {
        client_id: METER_CLIENT,
        client_secret: meterSecret,
        client_name: 'Benchmark usage recorder',
        redirect_uris: [],
        response_types: [],
        grant_types: ['client_credentials'],
        scope: 'usage:write',
      },
    ],
    users: Array.from({ length: USERS }, (_, index) => ({
      email: `bench-user-${index}@example.com`,
      name: `Bench User ${index}`,
      password_hash: hash,
      email_verified: true,
      plan: BENCH_PLAN,
    })),
  };
  return { seed, password, webSecret, serviceSecret, meterSecret };
}
