import Router from '@koa/router';

/** /healthz: the process answers. /readyz: the database answers too (503 when it does not). */
export function healthRoutes(databaseReady: () => Promise<boolean>): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const ready = await databaseReady();
    ctx.status = ready ? 200 : 503;
    ctx.body = { status: ready ? 'ready' : 'database unavailable' };
  });
  return router;
}
