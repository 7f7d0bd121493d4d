import { describe, expect, it } from 'vitest';
import { verifiedAddressOf } from './client.ts';
import { checkUpstream, storedSettingsOf } from './settings.ts';

const GOOGLE = { id: 'google', name: 'Google', type: 'oidc', issuer: 'https://accounts.google.com', client_id: 'id', client_secret: 'secret' };

describe('an upstream entry of the seed', () => {
  it('oidc: scopes default to openid email profile; the stored settings hold no secret', () => {
    const entry = checkUpstream(GOOGLE);
    expect(entry).toMatchObject({ scopes: 'openid email profile' });
    expect(storedSettingsOf(entry)).toEqual({ issuer: 'https://accounts.google.com', scopes: 'openid email profile' });
  });

  it('refuses what would be unsafe or unusable, naming the field', () => {
    expect(() => checkUpstream({ ...GOOGLE, issuer: 'http://accounts.example.com' })).toThrow('issuer: must be an https URL');
    expect(() => checkUpstream({ ...GOOGLE, scopes: 'email profile' })).toThrow('scopes: must include openid');
    expect(() => checkUpstream({ ...GOOGLE, id: 'Google!' })).toThrow(/^id: /);
    expect(() => checkUpstream({ ...GOOGLE, extra: true })).toThrow();
    expect(() => checkUpstream({ ...GOOGLE, type: 'saml' })).toThrow();
    expect(() => checkUpstream({ id: 'github', name: 'GitHub', type: 'oauth2', client_id: 'x', authorization_endpoint: 'https://github.com/login/oauth/authorize', token_endpoint: 'https://github.com/login/oauth/access_token' })).toThrow('userinfo_endpoint');
  });

  it('http only for a loopback host', () => {
    expect(checkUpstream({ ...GOOGLE, issuer: 'http://127.0.0.1:8080' }).type).toBe('oidc');
    expect(checkUpstream({ ...GOOGLE, issuer: 'http://localhost:8080' }).type).toBe('oidc');
  });

  it('oauth2: the claims mapping defaults to the same names', () => {
    const entry = checkUpstream({ id: 'li', name: 'LinkedIn', type: 'oauth2', client_id: 'x', authorization_endpoint: 'https://a.example/auth', token_endpoint: 'https://a.example/token', userinfo_endpoint: 'https://a.example/me' });
    expect(storedSettingsOf(entry)).toMatchObject({ claims: { sub: 'sub', email: 'email', email_verified: 'email_verified', name: 'name' } });
  });
});

describe("GitHub's emails endpoint", () => {
  it('gives the primary verified address, else any verified one, never an unverified one', () => {
    expect(verifiedAddressOf([{ email: 'old@x', primary: false, verified: true }, { email: 'main@x', primary: true, verified: true }])).toBe('main@x');
    expect(verifiedAddressOf([{ email: 'main@x', primary: true, verified: false }, { email: 'other@x', primary: false, verified: true }])).toBe('other@x');
    expect(verifiedAddressOf([{ email: 'main@x', primary: true, verified: false }])).toBeUndefined();
    expect(verifiedAddressOf({ message: 'Requires authentication' })).toBeUndefined();
  });
});
