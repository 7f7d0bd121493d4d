import { z } from 'zod';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** http is accepted only in development, or for a loopback host (trying the built app locally). */
function secureEnough(value: string): boolean {
  if (!URL.canParse(value)) return true; // reported by the URL check
  const url = new URL(value);
  return url.protocol === 'https:' || process.env.NODE_ENV !== 'production' || LOOPBACK_HOSTS.has(url.hostname);
}

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
  .refine(secureEnough, 'must be https (http only for localhost or in development)')
  .transform((value) => value.replace(/\/+$/, ''));

const UPSTREAM_ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** `google:Google,github:GitHub`: the provider's upstream ids, each with the name its button shows. */
const upstreamList = z
  .string()
  .transform((value, context) => {
    const upstreams: Array<{ id: string; name: string }> = [];
    for (const entry of value.split(',').map((part) => part.trim()).filter(Boolean)) {
      const separator = entry.indexOf(':');
      const id = separator > 0 ? entry.slice(0, separator).trim() : '';
      const name = separator > 0 ? entry.slice(separator + 1).trim() : '';
      if (!UPSTREAM_ID.test(id) || name.length === 0 || name.length > 100) {
        context.addIssue({ code: 'custom', message: `"${entry.slice(0, 80)}" is not id:Name (an upstream id of the provider, then the name to show)` });
        return z.NEVER;
      }
      upstreams.push({ id, name });
    }
    return upstreams;
  });

/** Every setting of the web app, read from the environment when the server starts. */
export const settingsSchema = z.object({
  IDP_ISSUER: httpUrl.default('http://localhost:4000').describe("the provider's issuer; discovery is read from <IDP_ISSUER>/.well-known/openid-configuration"),
  WEB_CLIENT_ID: z.string().min(1).default('jobswipe-web').describe('client id registered at the provider'),
  WEB_CLIENT_SECRET: z.string({ error: 'is required' }).min(16, 'must be at least 16 characters').describe('client secret (client_secret_basic)'),
  NEXTAUTH_URL: httpUrl.default('http://localhost:3000').describe('public URL of this app; the redirect URI is <NEXTAUTH_URL>/api/auth/callback/jobswipe'),
  NEXTAUTH_SECRET: z.string({ error: 'is required' }).min(32, 'must be at least 32 characters').describe('encrypts the session cookie'),
  PORT: z.coerce.number({ error: 'must be a port number' }).int().min(1).max(65535).default(3000).describe('HTTP port (read by next start)'),
  WEB_REFRESH_SKEW_SECONDS: z.coerce
    .number({ error: 'must be a number of seconds' })
    .int()
    .min(0)
    .max(86_400)
    .default(60)
    .describe('refresh the access token when fewer than this many seconds of it remain'),
  WEB_UPSTREAMS: upstreamList
    .default([])
    .describe('social login buttons on the landing page, as id:Name pairs separated by commas (e.g. google:Google,github:GitHub); each passes upstream=<id> to the provider'),
});

export interface Settings {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** NEXTAUTH_URL without a trailing slash. */
  baseUrl: string;
  secret: string;
  port: number;
  refreshSkewSeconds: number;
  /** Session cookies carry Secure (and the __Secure- prefix) whenever the app is served over https. */
  secureCookies: boolean;
  /** One **Continue with <name>** button each on the landing page (the provider's upstream ids). */
  upstreams: Array<{ id: string; name: string }>;
}

export type SettingsResult = { ok: true; settings: Settings } | { ok: false; problems: string[] };

export function parseSettings(env: Record<string, string | undefined>): SettingsResult {
  // An empty variable counts as unset, so its default applies.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value !== ''));
  const parsed = settingsSchema.safeParse(present);
  if (!parsed.success) {
    return { ok: false, problems: parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`) };
  }
  const values = parsed.data;
  return {
    ok: true,
    settings: {
      issuer: values.IDP_ISSUER,
      clientId: values.WEB_CLIENT_ID,
      clientSecret: values.WEB_CLIENT_SECRET,
      baseUrl: values.NEXTAUTH_URL,
      secret: values.NEXTAUTH_SECRET,
      port: values.PORT,
      refreshSkewSeconds: values.WEB_REFRESH_SKEW_SECONDS,
      secureCookies: values.NEXTAUTH_URL.startsWith('https://'),
      upstreams: values.WEB_UPSTREAMS,
    },
  };
}

let current: Settings | undefined;

/** The settings, validated once per process (instrumentation.ts has already refused bad ones at start). */
export function settings(): Settings {
  if (current) return current;
  const result = parseSettings(process.env);
  if (!result.ok) throw new Error(`invalid settings: ${result.problems.join('; ')}`);
  current = result.settings;
  return current;
}
