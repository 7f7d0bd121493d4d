import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../../../test/support/server.ts';

/** GET with headers fetch() will not send (Host); answers the JSON body. */
function getJson(url: string, headers: Record<string, string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sent = request(url, { headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          expect(response.statusCode).toBe(200);
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
        } catch (error) {
          reject(error);
        }
      });
    });
    sent.on('error', reject);
    sent.end();
  });
}

/** Every URL in a discovery document, nested ones included. */
function urlsIn(value: unknown): string[] {
  if (typeof value === 'string') return /^https?:\/\//.test(value) ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(urlsIn);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(urlsIn);
  return [];
}

describe.each([
  ['without TRUST_PROXY', {}],
  ['with TRUST_PROXY=loopback', { TRUST_PROXY: 'loopback' }],
] as const)('discovery endpoint URLs %s', (_label, env) => {
  let idp: TestServer;

  beforeAll(async () => {
    idp = await startTestServer('embedded', env);
  });

  afterAll(async () => {
    await idp?.stop();
  });

  it.each([
    ['Host: evil.example', { host: 'evil.example' }],
    ['X-Forwarded-Host: evil.example', { 'x-forwarded-host': 'evil.example' }],
    ['X-Forwarded-Host and X-Forwarded-Proto', { 'x-forwarded-host': 'evil.example:8443', 'x-forwarded-proto': 'https' }],
  ])('are under the issuer whatever the request names (%s)', async (_name, headers) => {
    const discovery = await getJson(`${idp.issuer}/.well-known/openid-configuration`, headers);
    expect(discovery['issuer']).toBe(idp.issuer);
    const urls = urlsIn(discovery);
    expect(urls).toContain(`${idp.issuer}/token`);
    expect(urls).toContain(`${idp.issuer}/jwks`);
    for (const url of urls) expect(url.startsWith(`${idp.issuer}/`) || url === idp.issuer, url).toBe(true);
  });
});
