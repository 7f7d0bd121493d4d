import { Writable } from 'node:stream';
import { decodeProtectedHeader } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@jobswipe/config';
import { startServer, type RunningServer } from '@jobswipe/idp';
import { createClientRegistry } from '../../src/clients/registry.ts';
import { lazyCipher } from '../../src/clients/secrets.ts';
import { loadKek, openKeystore } from '../../src/signing-keys.ts';
import { freePort } from '../../../test/support/processes.ts';
import { createTestStore, storeEnvironment, STORE_KINDS, type TestStore } from '../../../test/support/stores.ts';

const WEB_SECRET = 'web-secret-9f8e7d6c5b4a39281706f5e4d3c2b1a0';
const OTHER_SECRET = 'other-secret-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const LEGACY_SECRET = 'legacy-secret-written-in-the-clear-by-an-old-version';

const confidential = (clientId: string, secret: string) => ({
  client_id: clientId,
  client_secret: secret,
  redirect_uris: [`https://${clientId}.example.com/cb`],
  token_endpoint_auth_method: 'client_secret_basic',
});

describe.each(STORE_KINDS)('client secrets at rest (%s)', (kind) => {
  let store: TestStore;
  let server: RunningServer;
  let logs: string[];
  let port: number;

  async function start(): Promise<RunningServer> {
    logs = [];
    const destination = new Writable({
      write(chunk, _encoding, callback) {
        logs.push(String(chunk));
        callback();
      },
    });
    const config = loadConfig({ ...storeEnvironment(store), PORT: String(port), METRICS_PORT: '0', ISSUER: `http://127.0.0.1:${port}`, LOG_LEVEL: 'info' });
    return startServer(config, { logDestination: destination });
  }

  const registry = () =>
    createClientRegistry(
      server.database.db,
      (metadata) => server.provider.Client.validate(metadata),
      lazyCipher(async () => openKeystore(server.database.db, server.config, (await loadKek(server.config)).kek).columnCipher()),
    );

  const storedPayload = async (clientId: string) => {
    const row = await server.database.db
      .selectFrom('oidc_models')
      .select(sql<string>`payload::text`.as('text'))
      .where('model', '=', 'Client')
      .where('id', '=', clientId)
      .executeTakeFirstOrThrow();
    return { text: row.text, payload: JSON.parse(row.text) as Record<string, unknown> };
  };

  /** Introspection with HTTP Basic client authentication: the status says whether the secret was accepted. */
  const authenticate = async (clientId: string, secret: string) => {
    const response = await fetch(`${server.url}/token/introspection`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'token=not-a-token',
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    store = await createTestStore(kind);
    port = await freePort();
    server = await start();
    await registry().save(confidential('web', WEB_SECRET));
    await registry().save(confidential('other', OTHER_SECRET));
  });
  afterAll(async () => {
    await server?.close();
    await store?.drop();
  });

  it('stores no client secret in the clear: only a JWE under the column data key, bound to the client', async () => {
    const { text, payload } = await storedPayload('web');
    expect(text).not.toContain(WEB_SECRET);
    expect(payload['client_secret']).toBeUndefined();
    const header = decodeProtectedHeader(String(payload['client_secret_sealed']));
    expect(header).toMatchObject({ alg: 'A256GCMKW', enc: 'A256GCM', ctx: 'client_secret:web' });
    expect(String(header.kid)).toMatch(/^dek-/);
    // The list the CLI prints has neither form of the secret.
    const listed = (await registry().list()).find((client) => client.client_id === 'web');
    expect(Object.keys(listed!)).not.toContain('client_secret_sealed');
    expect(Object.keys(listed!)).not.toContain('client_secret');
  });

  it('the provider opens it to authenticate the client: the right secret is accepted, a wrong one is not', async () => {
    expect(await authenticate('web', WEB_SECRET)).toEqual({ status: 200, body: { active: false } });
    expect(await authenticate('web', OTHER_SECRET)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });

  it("a sealed secret copied into another client's row does not open there: invalid_client, logged, never a 500", async () => {
    const web = await storedPayload('web');
    const other = await storedPayload('other');
    await server.database.db
      .updateTable('oidc_models')
      .set({ payload: JSON.stringify({ ...other.payload, client_secret_sealed: web.payload['client_secret_sealed'] }) })
      .where('model', '=', 'Client')
      .where('id', '=', 'other')
      .execute();
    expect(await authenticate('other', WEB_SECRET)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await authenticate('other', OTHER_SECRET)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(logs.join('')).toContain('cannot open the sealed client_secret:other');
    expect(logs.join('')).not.toContain(WEB_SECRET);
  });

  it('a secret an earlier version stored in the clear is sealed when the server starts', async () => {
    await server.database.db
      .insertInto('oidc_models')
      .values({ model: 'Client', id: 'legacy', payload: JSON.stringify(confidential('legacy', LEGACY_SECRET)), expires_at: null, consumed_at: null })
      .execute();
    await server.close();
    server = await start();
    const { text, payload } = await storedPayload('legacy');
    expect(text).not.toContain(LEGACY_SECRET);
    expect(decodeProtectedHeader(String(payload['client_secret_sealed']))).toMatchObject({ ctx: 'client_secret:legacy' });
    expect(logs.join('')).toContain('sealed client secrets that were stored in the clear');
    expect(await authenticate('legacy', LEGACY_SECRET)).toEqual({ status: 200, body: { active: false } });
    expect(await authenticate('web', WEB_SECRET)).toEqual({ status: 200, body: { active: false } });
  });
});
