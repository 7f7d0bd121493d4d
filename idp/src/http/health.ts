import Router from '@koa/router';

/** Whether each backing service answers; redis is undefined when none is configured. */
export interface Readiness {
  database: boolean;
  redis: boolean | undefined;
}

/** /healthz: the process answers. /readyz: the database (and Redis, if configured) answer too; 503 otherwise. */
export function healthRoutes(ready: () => Promise<Readiness>): Router {
  const router = new Router();
  router.get('/healthz', (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.body = { status: 'ok' };
  });
  router.get('/readyz', async (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    const state = await ready();
    const down = [state.database ? undefined : 'database', state.redis === false ? 'redis' : undefined].filter(Boolean);
    ctx.status = down.length === 0 ? 200 : 503;
    ctx.body = down.length === 0 ? { status: 'ready' } : { status: `${down.join(' and ')} unavailable` };
  });
  return router;
}
