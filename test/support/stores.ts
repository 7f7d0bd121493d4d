import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoreOptions } from '@jobswipe/adapters';
import { inject } from 'vitest';
import { adminQuery as runAdminQuery } from './postgres-admin.ts';

export type StoreKind = 'embedded' | 'postgres';

/** Every store-dependent suite runs against both stores; a missing Postgres fails the run, never skips it. */
export const STORE_KINDS: StoreKind[] = ['embedded', 'postgres'];

/** Server that test databases are created on (trust auth on this machine and in CI). */
export const POSTGRES_ADMIN_URL = process.env['TEST_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const adminQuery = (text: string) => runAdminQuery(POSTGRES_ADMIN_URL, text);

export type TestStore =
  | { kind: 'postgres'; url: string; dataDir: string; drop(): Promise<void> }
  | { kind: 'embedded'; dataDir: string; drop(): Promise<void> };


/** A fresh, empty store of the given kind, plus a data directory for generated secrets. */
export async function createTestStore(kind: StoreKind): Promise<TestStore> {
  const dataDir = await mkdtemp(join(tmpdir(), 'jobswipe-store-'));
  if (kind === 'embedded') {
    await cp(inject('pgliteTemplate'), join(dataDir, 'pgdata'), { recursive: true });
    return { kind, dataDir, drop: () => rm(dataDir, { recursive: true, force: true }) };
  }
  const name = `jobswipe_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  await adminQuery(`create database ${name}`);
  const url = new URL(POSTGRES_ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    kind,
    url: url.toString(),
    dataDir,
    async drop() {
      await adminQuery(`drop database if exists ${name} with (force)`);
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Environment variables that point the provider at a test store. */
export function storeEnvironment(store: TestStore): Record<string, string> {
  return store.kind === 'postgres'
    ? { DATABASE_URL: store.url, DATA_DIR: store.dataDir, MIGRATE_ON_START: 'true' }
    : { DATA_DIR: store.dataDir };
}

/** How a test opens its own connection to a test store (the CLI's and the server's stay apart: a small pool). */
export function storeOptionsOf(store: TestStore, poolMax = 2): StoreOptions {
  return store.kind === 'postgres' ? { kind: 'postgres', url: store.url, poolMax } : { kind: 'embedded', dataDir: store.dataDir };
}
