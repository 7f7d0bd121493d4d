import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { issueCsrfToken } from './csrf.ts';
import { HttpError } from './errors.ts';
import { formGuard } from './form-guard.ts';

const form = formGuard(z.object({ name: z.string().min(1) }));
let server: Server;
let base: string;
let cookie: string;
let token: string;

beforeAll(async () => {
  const app = new Koa();
  app.keys = ['form guard test key'];
  const router = new Router();
  router.get('/form', (ctx) => {
    ctx.body = issueCsrfToken(ctx);
  });
  router.post('/form', form, (ctx) => {
    ctx.body = form.fieldsOf(ctx);
  });
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      if (!(error instanceof HttpError)) throw error;
      ctx.status = error.status;
      ctx.body = error.title;
    }
  });
  app.use(router.routes());
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const page = await fetch(`${base}/form`);
  cookie = page.headers.getSetCookie().map((line) => line.split(';')[0]).join('; ');
  token = await page.text();
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const post = (body: string, contentType = 'application/x-www-form-urlencoded') =>
  fetch(`${base}/form`, { method: 'POST', headers: { 'content-type': contentType, cookie }, body });

describe('formGuard', () => {
  it('refuses a missing, empty, doubled or wrong token with 403 before it validates anything else', async () => {
    for (const body of ['', 'name=', '_csrf=', `_csrf=${token}&_csrf=${token}&name=x`, '_csrf=wrong&name=x', `_csrf=${token.slice(0, -2)}xx`]) {
      expect((await post(body)).status, body).toBe(403);
    }
  });

  it('validates the other fields once the token is right (400), and hands them to the handler without the token', async () => {
    expect((await post(`_csrf=${token}`)).status).toBe(400);
    expect((await post(`_csrf=${token}&name=x&name=y`)).status).toBe(400);
    const accepted = await post(`_csrf=${token}&name=Ada&extra=1`);
    expect(accepted.status).toBe(200);
    expect(await accepted.json()).toEqual({ name: 'Ada' });
  });

  it('answers a body it cannot take as before: 415 for another type, 413 over 16 KiB', async () => {
    expect((await post(JSON.stringify({ _csrf: token }), 'application/json')).status).toBe(415);
    expect((await post(`_csrf=${token}&name=${'x'.repeat(17 * 1024)}`)).status).toBe(413);
  });
});
