import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, ownLines, runToExit, spawnNode, type Running } from '../../../test/support/processes.ts';
import { adminQuery as runAdminQuery } from '../../../test/support/postgres-admin.ts';
import { createTestStore, POSTGRES_ADMIN_URL, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { statusOf } from '../../../test/support/waiting.ts';

const SERVER_ENTRY = 'idp/src/main.ts';

/** Starts the server; waitForStatus tells when it is up. */
const startServer = (env: Record<string, string>): Running => spawnNode(SERVER_ENTRY, [], env);

/** Runs the server to completion (it is expected to refuse to start) within the timeout. */
const runServerToExit = (env: Record<string, string>, timeoutMs = 20_000) => runToExit(SERVER_ENTRY, [], env, timeoutMs);


/** Polls until url answers with the wanted status; fails with the last answer otherwise. */
async function waitForStatus(url: string, wanted: number, timeoutMs: number, server?: Running): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: number | undefined;
  while (Date.now() < deadline) {
    last = await statusOf(url);
    if (last === wanted) return;
    if (server && server.child.exitCode !== null) {
      throw new Error(`server exited with ${server.child.exitCode} before ${url} answered; stderr: ${server.stderr()}`);
    }
    await sleep(100);
  }
  throw new Error(`${url} answered ${last ?? 'nothing'} instead of ${wanted} for ${timeoutMs} ms`);
}


const adminQuery = (text: string) => runAdminQuery(POSTGRES_ADMIN_URL, text);

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('start-up with an invalid configuration', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'jobswipe-startup-'));
  });
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('exits with status 2 naming every bad variable, without a stack trace', async () => {
    const result = await runServerToExit({ DATA_DIR: dataDir, PORT: 'abc', ISSUER: 'nope' });
    expect(result.code).toBe(2);
    const lines = ownLines(result.stderr);
    expect(lines[0]).toBe('Invalid configuration:');
    expect(lines.some((line) => /^\s+PORT: /.test(line))).toBe(true);
    expect(lines.some((line) => /^\s+ISSUER: /.test(line))).toBe(true);
    expect(lines).toHaveLength(3);
    expect(result.stderr).not.toMatch(/^ {4}at /m);
    // Nothing was started: no store was created in DATA_DIR.
    expect(existsSync(join(dataDir, 'pgdata'))).toBe(false);
  });

  it('in production without settings, exits 2 naming ISSUER, DATABASE_URL, COOKIE_KEYS, KEYSTORE_KEK and SMTP_URL', async () => {
    const result = await runServerToExit({ DATA_DIR: dataDir, NODE_ENV: 'production' });
    expect(result.code).toBe(2);
    const named = ownLines(result.stderr)
      .slice(1)
      .map((line) => /^\s+([A-Z_]+): /.exec(line)?.[1]);
    expect(named.sort()).toEqual(['COOKIE_KEYS', 'DATABASE_URL', 'ISSUER', 'KEYSTORE_KEK', 'SMTP_URL']);
    expect(result.stderr).not.toMatch(/^ {4}at /m);
  });
});

describe('readiness against Postgres', () => {
  let store: TestStore;
  let server: Running | undefined;
  let database: string;
  let base: string;

  const blockConnections = async () => {
    await adminQuery(`alter database ${database} connection limit 0`);
    // CONNECTION LIMIT does not bind superusers (the test role is one); ALLOW_CONNECTIONS does.
    await adminQuery(`alter database ${database} allow_connections false`);
    await adminQuery(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${database}' and pid <> pg_backend_pid()`);
  };
  const restoreConnections = async () => {
    await adminQuery(`alter database ${database} allow_connections true`);
    await adminQuery(`alter database ${database} connection limit -1`);
  };

  beforeAll(async () => {
    store = await createTestStore('postgres');
    if (store.kind !== 'postgres') throw new Error('expected a Postgres store');
    database = new URL(store.url).pathname.slice(1);
    expect(database).toMatch(/^jobswipe_test_[a-z0-9_]+$/);
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startServer({ ...storeEnvironment(store), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    await waitForStatus(`${base}/healthz`, 200, 45_000, server);
  });

  afterAll(async () => {
    await server?.stop();
    if (database) await restoreConnections().catch(() => {});
    await store?.drop();
  });

  it('is ready while the database answers, and not ready (but alive) when it does not', async () => {
    expect(await statusOf(`${base}/readyz`)).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(await ready.json()).toEqual({ status: 'ready' });
    expect(ready.headers.get('cache-control')).toBe('no-store');

    await blockConnections();
    try {
      await waitForStatus(`${base}/readyz`, 503, 8_000, server);
      const unready = await fetch(`${base}/readyz`);
      expect(unready.status).toBe(503);
      expect(await unready.json()).toEqual({ status: 'database unavailable' });
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
    } finally {
      await restoreConnections();
    }

    // The pool reconnects once the database takes connections again; the process never died.
    await waitForStatus(`${base}/readyz`, 200, 10_000, server);
    expect(server?.child.exitCode).toBeNull();
  }, 45_000);

  it('stops cleanly on SIGTERM', async () => {
    server?.child.kill('SIGTERM');
    expect(await Promise.race([server?.exited, sleep(10_000).then(() => 'still running')])).toBe(0);
    expect(ownLines(server?.stderr() ?? '')).toEqual([]);
  }, 15_000);
});

describe('embedded store: shutdown and exclusive use', () => {
  let store: TestStore;
  let server: Running | undefined;
  let port: number;

  beforeAll(async () => {
    store = await createTestStore('embedded');
    port = await freePort();
    server = startServer({ ...storeEnvironment(store), PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    await waitForStatus(`http://127.0.0.1:${port}/healthz`, 200, 45_000, server);
  });

  afterAll(async () => {
    await server?.stop();
    await store?.drop();
  });

  it('a second server on the same DATA_DIR exits non-zero with one "store in use" line', async () => {
    const other = await freePort();
    const result = await runServerToExit({ ...storeEnvironment(store), PORT: String(other), HOST: '127.0.0.1' });
    expect(result.code).not.toBe(0);
    expect(typeof result.code).toBe('number');
    const lines = ownLines(result.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('store in use');
    expect(lines[0]).toContain(String(server?.child.pid));
    expect(result.stderr).not.toMatch(/^ {4}at /m);
    // The running server was not disturbed.
    expect(await statusOf(`http://127.0.0.1:${port}/readyz`)).toBe(200);
  }, 30_000);

  it('on SIGTERM refuses new connections, finishes the request in flight and exits 0', async () => {
    const body = `grant_type=client_credentials&client_id=nobody&client_secret=${'x'.repeat(100)}`.slice(0, 100);
    expect(Buffer.byteLength(body)).toBe(100);
    const head =
      'POST /token HTTP/1.1\r\n' +
      `Host: 127.0.0.1:${port}\r\n` +
      'Content-Type: application/x-www-form-urlencoded\r\n' +
      'Accept: application/json\r\n' +
      'Content-Length: 100\r\n' +
      '\r\n';

    const socket: Socket = connect({ port, host: '127.0.0.1' });
    let received = '';
    let socketError: Error | undefined;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', (error) => (socketError = error));
    const socketClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(head + body.slice(0, 40));
    // Let the server parse the headers and start reading the body.
    await sleep(500);
    expect(received).toBe('');

    const signalledAt = Date.now();
    server?.child.kill('SIGTERM');

    // New connections are refused soon after the signal.
    let refused = false;
    for (const deadline = Date.now() + 5_000; Date.now() < deadline && !refused; ) {
      refused = await connectionRefused(port);
      if (!refused) await sleep(50);
    }
    expect(refused).toBe(true);
    expect(server?.child.exitCode).toBeNull();

    // The request in flight is still answered, completely.
    socket.write(body.slice(40));
    const complete = () => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return false;
      const length = /\r\ncontent-length: (\d+)\r\n/i.exec(received.slice(0, end + 2))?.[1];
      return length !== undefined && Buffer.byteLength(received.slice(end + 4)) >= Number(length);
    };
    for (const deadline = signalledAt + 9_000; Date.now() < deadline && !complete(); ) await sleep(25);
    expect(socketError).toBeUndefined();
    expect(complete()).toBe(true);
    expect(received).toMatch(/^HTTP\/1\.1 4\d\d /);
    const payload = JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4)) as { error?: string };
    expect(payload.error).toBe('invalid_client');
    socket.end();

    const code = await Promise.race([server?.exited, sleep(10_000 - (Date.now() - signalledAt)).then(() => 'still running')]);
    expect(code).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(10_000);
    await socketClosed;
    expect(socketError).toBeUndefined();
    // Closing the store released its lock.
    expect(existsSync(join(store.dataDir, 'store.lock'))).toBe(false);
  }, 30_000);
});
