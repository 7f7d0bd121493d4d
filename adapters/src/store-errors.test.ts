import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { POSTGRES_ADMIN_URL } from '../../test/support/stores.ts';
import { isStoreUnavailable, StoreUnavailableError, unlessUnavailable } from './store-errors.ts';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function failureOf(operation: Promise<unknown>): Promise<unknown> {
  try {
    await operation;
  } catch (error) {
    return error;
  }
  throw new Error('expected the operation to fail');
}

describe('store errors', () => {
  it('recognises a Postgres that is not there, and a pool that cannot get a connection in time', async () => {
    const port = await freePort();
    const refused = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`, connectionTimeoutMillis: 1_000 });
    expect(isStoreUnavailable(await failureOf(refused.query('select 1')))).toBe(true);
    await refused.end();

    // A server that accepts the connection and never answers: the pool's connection timeout.
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const hanging = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${(silent.address() as { port: number }).port}/postgres`, connectionTimeoutMillis: 300 });
    expect(isStoreUnavailable(await failureOf(hanging.query('select 1')))).toBe(true);
    await hanging.end();
    silent.close();
  });

  it('recognises a connection the server terminates, and a statement timeout', async () => {
    const pool = new pg.Pool({ connectionString: POSTGRES_ADMIN_URL, max: 2 });
    pool.on('error', () => {});
    const victim = await pool.connect();
    victim.on('error', () => {});
    const { rows } = await victim.query<{ pid: number }>('select pg_backend_pid() as pid');
    const running = failureOf(victim.query('select pg_sleep(5)'));
    await pool.query('select pg_terminate_backend($1)', [rows[0]!.pid]);
    expect(isStoreUnavailable(await running)).toBe(true);
    victim.release(true);

    const timedOut = await failureOf(pool.query("set statement_timeout = '50ms'; select pg_sleep(1)"));
    expect((timedOut as { code?: string }).code).toBe('57014');
    expect(isStoreUnavailable(timedOut)).toBe(true);
    await pool.end();
  });

  it('does not take a wrong query, or a bug, for an unavailable store', async () => {
    const pool = new pg.Pool({ connectionString: POSTGRES_ADMIN_URL, max: 1 });
    const syntax = await failureOf(pool.query('selec 1'));
    expect(isStoreUnavailable(syntax)).toBe(false);
    const division = await failureOf(pool.query('select 1/0'));
    expect(isStoreUnavailable(division)).toBe(false);
    await pool.end();
    expect(isStoreUnavailable(new TypeError("Cannot read properties of undefined (reading 'id')"))).toBe(false);
    expect(isStoreUnavailable(undefined)).toBe(false);
  });

  it('recognises Redis away without an offline queue, and a command timing out', async () => {
    const port = await freePort();
    const redis = new Redis({ port, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => null });
    redis.on('error', () => {});
    await redis.connect().catch(() => {});
    expect(isStoreUnavailable(await failureOf(redis.get('key')))).toBe(true);
    redis.disconnect();
  });

  it('unlessUnavailable turns the first kind into StoreUnavailableError (503 temporarily_unavailable) and passes the rest through', async () => {
    const port = await freePort();
    const pool = new pg.Pool({ connectionString: `postgres://postgres@127.0.0.1:${port}/postgres` });
    const error = await failureOf(unlessUnavailable(pool.query('select 1')));
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as StoreUnavailableError).statusCode).toBe(503);
    expect((error as StoreUnavailableError).error).toBe('temporarily_unavailable');
    expect((error as StoreUnavailableError).expose).toBe(true);
    await pool.end();
    const bug = new RangeError('out of range');
    await expect(unlessUnavailable(Promise.reject(bug))).rejects.toBe(bug);
  });
});
