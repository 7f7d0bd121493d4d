import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asStoreOwner, cli } from '../../../test/support/cli.ts';
import { createTestStore, STORE_KINDS, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import type { Tables } from '../../src/store.ts';

/* The seed's `upstreams` and `idp upstreams list`, through the real CLI on both stores: secrets sealed, never shown. */

const ISSUER = 'https://id.jobswipe.example';
const GOOGLE_SECRET = 'GOCSPX-google-secret-never-shown';
const GITHUB_SECRET = 'github0secret0never0shown0000000000000000';

const GOOGLE = { id: 'google', name: 'Google', type: 'oidc', issuer: 'https://accounts.google.com', client_id: '1234-abc.apps.googleusercontent.com', client_secret: GOOGLE_SECRET, scopes: 'openid email profile' };
const GITHUB = {
  id: 'github',
  name: 'GitHub',
  type: 'oauth2',
  authorization_endpoint: 'https://github.com/login/oauth/authorize',
  token_endpoint: 'https://github.com/login/oauth/access_token',
  userinfo_endpoint: 'https://api.github.com/user',
  emails_endpoint: 'https://api.github.com/user/emails',
  client_id: 'Iv1.0123456789abcdef',
  client_secret: GITHUB_SECRET,
  scopes: 'read:user user:email',
  claims: { sub: 'id', email: 'email', name: 'name' },
};

describe.concurrent.each(STORE_KINDS)('upstreams in the seed and `idp upstreams list` against the %s store', (kind) => {
  let store: TestStore;
  let env: Record<string, string>;
  let seedPath: string;

  const idp = cli(() => env);
  const ok = async (args: string[]) => (await idp.ok(args)).out;
  const inStore = <T>(fn: (db: Kysely<Tables>) => Promise<T>) => asStoreOwner(store, fn);

  const rows = () => inStore((db) => db.selectFrom('upstreams').selectAll().orderBy('id').execute());

  beforeAll(async () => {
    store = await createTestStore(kind);
    env = { ...storeEnvironment(store), ISSUER, LOG_LEVEL: 'warn' };
    seedPath = join(store.dataDir, 'seed.json');
  });

  afterAll(async () => {
    await store?.drop();
  });

  describe.sequential('step by step', () => {
    it('imports upstreams with their secrets sealed; importing again changes nothing', async () => {
      await writeFile(seedPath, JSON.stringify({ upstreams: [GOOGLE, GITHUB] }));
      expect(await ok(['import', '--file', seedPath])).toEqual(['2 upstreams, 0 clients, 0 users imported, 0 changed']);
      const stored = await rows();
      expect(stored.map((row) => row.id)).toEqual(['github', 'google']);
      for (const row of stored) {
        const text = JSON.stringify(row);
        expect(text).not.toContain(GOOGLE_SECRET);
        expect(text).not.toContain(GITHUB_SECRET);
        expect(row.client_secret_sealed.length).toBeGreaterThan(20);
      }
      expect(stored.find((row) => row.id === 'github')?.settings).toMatchObject({ emails_endpoint: GITHUB.emails_endpoint, claims: GITHUB.claims });
      expect(await ok(['import', '--file', seedPath])).toEqual(['0 upstreams, 0 clients, 0 users imported, 0 changed']);
      // Without client_secret, the stored one is kept (the file need not hold it again).
      const { client_secret: _secret, ...withoutSecret } = GOOGLE;
      await writeFile(seedPath, JSON.stringify({ upstreams: [{ ...withoutSecret, name: 'Google Workspace' }] }));
      expect(await ok(['import', '--file', seedPath])).toEqual(['0 upstreams, 0 clients, 0 users imported, 1 changed']);
      const google = (await rows()).find((row) => row.id === 'google');
      expect(google?.name).toBe('Google Workspace');
      expect(google?.client_secret_sealed).toBe(stored.find((row) => row.id === 'google')?.client_secret_sealed);
      const saved = await inStore((db) => db.selectFrom('audit_events').select(['details']).where('event_type', '=', 'admin.upstream_saved').orderBy('id').execute());
      expect(saved.map((row) => [row.details['upstream'], row.details['change']])).toEqual([['google', 'created'], ['github', 'created'], ['google', 'changed']]);
    }, 150_000);

    it('upstreams list: one line per upstream with its callback, never a secret', async () => {
      const out = await ok(['upstreams', 'list']);
      expect(out[0]).toMatch(/^ID\s+NAME\s+TYPE\s+ISSUER_OR_ENDPOINT\s+CLIENT_ID\s+SCOPES\s+CALLBACK$/);
      expect(out.slice(1).map((line) => line.split(/\s{2,}/))).toEqual([
        ['github', 'GitHub', 'oauth2', GITHUB.authorization_endpoint, GITHUB.client_id, 'read:user user:email', `${ISSUER}/upstream/github/callback`],
        ['google', 'Google Workspace', 'oidc', GOOGLE.issuer, GOOGLE.client_id, 'openid email profile', `${ISSUER}/upstream/google/callback`],
      ]);
      expect(out.join('\n')).not.toContain(GOOGLE_SECRET);
      expect(out.join('\n')).not.toContain(GITHUB_SECRET);
    }, 150_000);

    it('refuses a bad entry with the field at fault, and writes nothing', async () => {
      await writeFile(seedPath, JSON.stringify({ upstreams: [{ ...GOOGLE, id: 'other', issuer: 'http://accounts.example.com' }] }));
      const result = await idp.run(['import', '--file', seedPath]);
      expect(result.code).not.toBe(0);
      expect(result.err.join(' ')).toContain('upstreams.0.issuer: must be an https URL');
      await writeFile(seedPath, JSON.stringify({ upstreams: [{ ...withoutSecretOf(GITHUB), id: 'gitlab' }] }));
      const missing = await idp.run(['import', '--file', seedPath]);
      expect(missing.err.join(' ')).toContain('upstream gitlab: client_secret is required');
      expect((await rows()).map((row) => row.id)).toEqual(['github', 'google']);
    }, 150_000);
  });
});

function withoutSecretOf(entry: Record<string, unknown>): Record<string, unknown> {
  const { client_secret: _secret, ...rest } = entry;
  return rest;
}
