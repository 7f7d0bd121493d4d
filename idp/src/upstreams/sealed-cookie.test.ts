import type { Context } from 'koa';
import { describe, expect, it, vi } from 'vitest';
import { sealedCookie } from './sealed-cookie.ts';

/** The cookie jar of one browser, as Koa's ctx.cookies sees it. */
function browser(): Context & { jar: Map<string, string> } {
  const jar = new Map<string, string>();
  return {
    jar,
    secure: true,
    cookies: {
      get: (name: string) => jar.get(name),
      set: (name: string, value: string | null) => {
        if (value === null) jar.delete(name);
        else jar.set(name, value);
      },
    },
  } as unknown as Context & { jar: Map<string, string> };
}

const value = { uid: 'interaction-uid-1234', state: 'state-value-5678', nonce: 'nonce-value-9012', verifier: 'verifier-value-3456' };

describe('sealed cookie', () => {
  it('opens what it sealed, and the browser sees none of it', () => {
    const cookie = sealedCookie<typeof value>('test', ['key-one'], 60);
    const ctx = browser();
    cookie.set(ctx, value, '/upstream');
    const raw = ctx.jar.get('test')!;
    const decoded = Buffer.from(raw, 'base64url').toString('latin1');
    for (const part of Object.values(value)) {
      expect(raw).not.toContain(part);
      expect(decoded).not.toContain(part);
    }
    expect(cookie.get(ctx)).toEqual(value);
  });

  it('refuses an altered value, another cookie name, and an unknown key', () => {
    const ctx = browser();
    sealedCookie<typeof value>('test', ['key-one'], 60).set(ctx, value, '/');
    const raw = ctx.jar.get('test')!;
    const altered = Buffer.from(raw, 'base64url');
    altered[altered.length - 1]! ^= 1;
    ctx.jar.set('test', altered.toString('base64url'));
    expect(sealedCookie('test', ['key-one'], 60).get(ctx)).toBeUndefined();
    ctx.jar.set('other', raw);
    expect(sealedCookie('other', ['key-one'], 60).get(ctx)).toBeUndefined();
    ctx.jar.set('test', raw);
    expect(sealedCookie('test', ['key-two'], 60).get(ctx)).toBeUndefined();
    ctx.jar.set('test', 'short');
    expect(sealedCookie('test', ['key-one'], 60).get(ctx)).toBeUndefined();
  });

  it('still opens under a retired cookie key (rotation), not after its lifetime', () => {
    const ctx = browser();
    sealedCookie<typeof value>('test', ['old-key'], 60).set(ctx, value, '/');
    expect(sealedCookie('test', ['new-key', 'old-key'], 60).get(ctx)).toEqual(value);
    vi.useFakeTimers({ now: Date.now() + 61_000 });
    try {
      expect(sealedCookie('test', ['new-key', 'old-key'], 60).get(ctx)).toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
  });

  it('clear removes it', () => {
    const cookie = sealedCookie<typeof value>('test', ['key-one'], 60);
    const ctx = browser();
    cookie.set(ctx, value, '/');
    cookie.clear(ctx, '/');
    expect(cookie.get(ctx)).toBeUndefined();
  });
});
