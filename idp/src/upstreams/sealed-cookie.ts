import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import type { Context } from 'koa';

/*
 * A short-lived cookie whose value is sealed (AES-256-GCM) under a key derived from the cookie keys:
 * the browser carries an upstream sign-in's state, nonce and PKCE verifier, and later who signed in,
 * without being able to read or change them. Each value names the interaction it belongs to, and
 * the routes compare that with the interaction cookie of the request.
 */

const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface SealedCookie<T> {
  set(ctx: Context, value: T, path: string): void;
  /** The value, or undefined when absent, expired, sealed under an unknown key, or altered. */
  get(ctx: Context): T | undefined;
  clear(ctx: Context, path: string): void;
}

function keyOf(cookieKey: string, name: string): Buffer {
  return Buffer.from(hkdfSync('sha256', cookieKey, '', `jobswipe sealed cookie ${name}`, 32));
}

export function sealedCookie<T>(name: string, cookieKeys: string[], lifetimeSeconds: number): SealedCookie<T> {
  // The first key seals; every configured key opens, so a rotation does not break sign-ins under way.
  const keys = cookieKeys.map((key) => keyOf(key, name));
  const options = (ctx: Context, path: string) => ({ httpOnly: true, sameSite: 'lax' as const, secure: ctx.secure, path, overwrite: true });

  function open(value: string): T | undefined {
    const sealed = Buffer.from(value, 'base64url');
    if (sealed.length <= IV_BYTES + TAG_BYTES) return undefined;
    for (const key of keys) {
      try {
        const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(name));
        decipher.setAuthTag(sealed.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        const plain = Buffer.concat([decipher.update(sealed.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
        const { exp, value: inner } = JSON.parse(plain.toString('utf8')) as { exp: number; value: T };
        return Date.now() < exp ? inner : undefined;
      } catch {
        // Not sealed under this key: try the next one.
      }
    }
    return undefined;
  }

  return {
    set(ctx, value, path) {
      const key = keys[0];
      if (!key) throw new Error('no cookie key to seal with');
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(name));
      const body = Buffer.concat([cipher.update(JSON.stringify({ exp: Date.now() + lifetimeSeconds * 1000, value }), 'utf8'), cipher.final()]);
      const sealed = Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
      ctx.cookies.set(name, sealed, { ...options(ctx, path), maxAge: lifetimeSeconds * 1000 });
    },
    get(ctx) {
      const value = ctx.cookies.get(name);
      return value ? open(value) : undefined;
    },
    clear(ctx, path) {
      ctx.cookies.set(name, null, options(ctx, path));
    },
  };
}
