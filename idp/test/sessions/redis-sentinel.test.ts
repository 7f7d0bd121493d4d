import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../../../test/support/browser.ts';
import { startPrivateSentinelSet, type PrivateSentinelSet } from '../../../test/support/private-services.ts';
import { authorizationRequest, exchangeCode, relyingParty, signIn, type RelyingParty } from '../../../test/support/relying-party.ts';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

const CALLBACK = 'http://localhost:3000/cb';
const MASTER = 'identity';
const PASSWORD = 'primary-and-replica-secret';
const SENTINEL_PASSWORD = 'sentinel-secret';
const PREFIX = 'sentinel-test:';
const erin = { email: 'erin@example.com', password: 'primaries come and go' };

/*
 * REDIS_SENTINELS: the provider finds the primary through a Sentinel and follows a failover by itself.
 * A real primary, replica and Sentinel (redis-server --sentinel), all with passwords.
 */
describe('Redis through Sentinel', { timeout: 120_000 }, () => {
  let redis: PrivateSentinelSet;
  let idp: TestServer;
  let rp: RelyingParty;

  beforeAll(async () => {
    redis = await startPrivateSentinelSet(MASTER, PASSWORD, SENTINEL_PASSWORD);
    idp = await startTestServer('postgres', {
      REDIS_SENTINELS: `127.0.0.1:${redis.sentinelPort}`,
      REDIS_SENTINEL_MASTER: MASTER,
      REDIS_PASSWORD: PASSWORD,
      REDIS_SENTINEL_PASSWORD: SENTINEL_PASSWORD,
      REDIS_KEY_PREFIX: PREFIX,
    });
    await idp.createUser(erin);
    rp = await relyingParty(idp.issuer, await idp.registerClient({ client_id: 'rp', redirect_uris: [CALLBACK], first_party: true }));
  }, 120_000);

  afterAll(async () => {
    await idp?.stop();
    await redis?.destroy();
  });

  const keysOn = async (port: number): Promise<string[]> => {
    const client = redis.client(port);
    try {
      await client.connect();
      return (await client.keys(`${PREFIX}*`)).sort();
    } finally {
      client.disconnect();
    }
  };

  const clientCredentials = (clientId: string, secret: string) =>
    fetch(`${idp.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });

  it('keeps sessions on the primary the Sentinel names, and after a failover goes on with the same session on the new one', async () => {
    const [first, second] = redis.ports;
    expect(await redis.primaryPort()).toBe(first);

    // A sign-in: its session is written to the primary (and replicated).
    const browser = new Browser();
    const request = await authorizationRequest(rp, 'openid');
    const callback = await signIn(browser, idp.issuer, request, CALLBACK, erin);
    await exchangeCode(rp, request, callback.location!);
    expect(await keysOn(first)).toContainEqual(expect.stringMatching(/Session/));
    expect((await fetch(`${idp.issuer}/readyz`)).status).toBe(200);

    expect(await redis.failover()).toBe(second);

    // The same browser signs in again without its password: the session is read from the new
    // primary, and this sign-in's interaction and code are written there. While the provider moves to
    // the new primary, a step may be refused (temporarily_unavailable, 503), or a code written to the
    // old primary in its last moment be gone (invalid_grant): the relying party starts again. None hangs.
    const deadline = Date.now() + 20_000;
    let again = false;
    const refusals: string[] = [];
    while (!again && Date.now() < deadline) {
      const retry = await authorizationRequest(rp, 'openid');
      const started = performance.now();
      const page = await signIn(browser, idp.issuer, retry, CALLBACK);
      expect(performance.now() - started).toBeLessThan(5_000);
      const answer = new URL(page.location ?? `${idp.issuer}/`);
      if (page.status === 303 && answer.searchParams.get('code')) {
        const exchanged = await exchangeCode(rp, retry, page.location!).then(
          () => undefined,
          // An OAuth error carries its status and code; another answer (503) is the cause's status.
          (error: { status?: number; error?: string; cause?: { status?: number } }) => `token ${error.status ?? error.cause?.status} ${error.error ?? ''}`,
        );
        if (exchanged === undefined) again = true;
        else refusals.push(exchanged);
      } else {
        refusals.push(`authorization ${page.status} ${answer.searchParams.get('error') ?? page.body.slice(0, 100)}`);
      }
      if (!again) await sleep(250);
    }
    for (const refusal of refusals) expect(refusal).toMatch(/temporarily_unavailable|token 503|token 400 invalid_grant/);
    expect(again, `still refused: ${refusals.join('; ')}`).toBe(true);
    expect((await fetch(`${idp.issuer}/readyz`)).status).toBe(200);

    // Writes go to the new primary: a new client's first token request creates its rate-limit
    // counter there (the new primary replicates from nobody: the key was written to it). A request
    // at the moment the provider switches counts in the database instead (the limit's insurance).
    let written: string[] = [];
    for (let attempt = 0; written.length === 0 && attempt < 20; attempt += 1) {
      const before = await keysOn(second);
      const service = await idp.registerClient({ client_id: `after-failover-${attempt}`, grant_types: ['client_credentials'], response_types: [], redirect_uris: [] });
      const token = await clientCredentials(service.client_id as string, service.client_secret as string);
      expect(token.status).toBe(200);
      written = (await keysOn(second)).filter((key) => !before.includes(key));
      if (written.length === 0) await sleep(500);
    }
    expect(written).toContainEqual(expect.stringContaining(`${PREFIX}ratelimit:token-requests:`));
  });
});
