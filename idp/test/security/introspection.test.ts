import { sql } from 'kysely';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { authorizationRequest, exchangeCode, registeredRelyingParty, signIn, webAppClient, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';
import { STORE_KINDS } from '../../../test/support/stores.ts';

const API = 'urn:jobswipe:api';
const alice = { email: 'alice@example.com', password: 'correct horse battery staple' };

/** The introspection answer as it went over the wire. */
async function introspect(rp: RelyingParty, token: string): Promise<Record<string, unknown>> {
  return { ...(await oidc.tokenIntrospection(rp.config, token)) };
}

describe.each(STORE_KINDS)('token introspection (%s)', (kind) => {
  let idp: TestServer;
  let owner: RelyingParty;
  let otherClient: RelyingParty;
  let resourceServer: RelyingParty;
  let tokens: { refreshToken: string; accessToken: string; apiAccessToken: string };

  beforeAll(async () => {
    idp = await startTestServer(kind);
    await idp.createUser({ ...alice, name: 'Alice Example' });
    owner = await registeredRelyingParty(idp, webAppClient());
    otherClient = await registeredRelyingParty(idp, { client_id: 'partner', redirect_uris: ['https://partner.example/callback'] });
    resourceServer = await registeredRelyingParty(idp, {
      client_id: 'jobs-api',
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      resource_server_audiences: [API],
    });

    const request = await authorizationRequest(owner, 'openid email offline_access');
    const callback = await signIn(new Browser(), idp.issuer, request, owner.redirectUri, alice);
    const issued = await exchangeCode(owner, request, callback.location!);

    // An opaque access token for the API under the same grant. The provider issues API tokens as JWTs
    // (introspection refuses those: resource servers verify them against the JWKS), so this one is
    // minted through the provider's own model, as an opaque API token format would issue it.
    const { provider } = idp.server;
    const { rows } = await sql<{ id: string }>`select id from oidc_models where model = 'Grant' and payload ->> 'clientId' = 'web'`.execute(idp.server.database.db);
    const grantId = rows[0]!.id;
    const apiToken = new provider.AccessToken({
      accountId: issued.claims()!.sub,
      client: (await provider.Client.find('web'))!,
      grantId,
      gty: 'authorization_code',
      scope: 'api:read',
    });
    apiToken.setAudience(API);
    tokens = { refreshToken: issued.refresh_token!, accessToken: issued.access_token, apiAccessToken: await apiToken.save() };
  });

  afterAll(async () => {
    await idp?.stop();
  });

  it("another client gets only active: false for the owner's refresh and access tokens", async () => {
    for (const token of Object.values(tokens)) expect(await introspect(otherClient, token)).toStrictEqual({ active: false });
  });

  it('the owner gets active: true with sub and scope for its own tokens', async () => {
    for (const token of Object.values(tokens)) {
      expect(await introspect(owner, token)).toMatchObject({ active: true, client_id: 'web', sub: expect.any(String), scope: expect.any(String) });
    }
  });

  it(`a resource server registered for ${API} gets active: true for an access token to the API, and nothing else`, async () => {
    expect(await introspect(resourceServer, tokens.apiAccessToken)).toMatchObject({ active: true, aud: API, client_id: 'web', scope: 'api:read' });
    expect(await introspect(resourceServer, tokens.accessToken)).toStrictEqual({ active: false });
    expect(await introspect(resourceServer, tokens.refreshToken)).toStrictEqual({ active: false });
  });

  it('registering a resource server for an audience this provider does not serve is refused', async () => {
    await expect(idp.registerClient({ client_id: 'elsewhere', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], resource_server_audiences: ['urn:other:api'] })).rejects.toThrow(
      /resource_server_audiences must be a list of the API resources this provider serves \(urn:jobswipe:api\)/,
    );
    await expect(idp.registerClient({ client_id: 'elsewhere', grant_types: ['client_credentials'], redirect_uris: [], response_types: [], resource_server_audiences: API })).rejects.toThrow(/resource_server_audiences/);
  });
});
