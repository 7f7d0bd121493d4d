import type { Context } from 'koa';

/** Answers one of our HTML pages: never cached, since our pages carry CSRF tokens and account data. */
export function answerPage(ctx: Context, status: number, body: string): void {
  ctx.status = status;
  ctx.type = 'html';
  ctx.set('Cache-Control', 'no-store');
  ctx.body = body;
}
