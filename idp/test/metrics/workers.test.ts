import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, spawnNode, type Running } from '../../../test/support/processes.ts';
import { createTestStore, storeEnvironment, type TestStore } from '../../../test/support/stores.ts';
import { statusOf, until } from '../../../test/support/waiting.ts';
import { promtool, sample, scrape } from './scrape.ts';

/*
 * WORKERS=2: the supervisor serves METRICS_PORT, and one scrape sums what both workers counted.
 * Each request goes on a connection of its own, which node:cluster hands to the workers in turn.
 */

/** GET on a fresh connection (no keep-alive: the next request may go to the other worker); its status. */
function getOnNewConnection(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('metrics with WORKERS=2 on Postgres', () => {
  let store: TestStore;
  let server: Running | undefined;
  let base: string;
  let metricsUrl: string;

  beforeAll(async () => {
    store = await createTestStore('postgres');
    const [port, metricsPort] = [await freePort(), await freePort()];
    base = `http://127.0.0.1:${port}`;
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    server = spawnNode('idp/src/main.ts', [], { ...storeEnvironment(store), PORT: String(port), HOST: '127.0.0.1', METRICS_PORT: String(metricsPort), LOG_LEVEL: 'warn', WORKERS: '2' });
    await until(async () => ((await statusOf(`${base}/readyz`)) === 200 ? true : undefined), 'the workers to be ready', 60_000);
    // Both workers answer the supervisor's metrics requests once each has started.
    await until(async () => (sample(await scrape(metricsUrl), 'jobswipe_workers_scraped') === 2 ? true : undefined), 'the metrics of both workers', 30_000);
  }, 90_000);

  afterAll(async () => {
    await server?.stop();
    await store?.drop();
  });

  it('one scrape counts the requests both workers served', async () => {
    const count = (text: string) => sample(text, 'jobswipe_http_requests_total', { route: '/healthz', method: 'GET', status: '200' }) ?? 0;
    const before = count(await scrape(metricsUrl));
    const answers = await Promise.all(Array.from({ length: 40 }, () => getOnNewConnection(`${base}/healthz`)));
    expect(answers.every((status) => status === 200)).toBe(true);
    const text = await scrape(metricsUrl);
    expect(sample(text, 'jobswipe_workers')).toBe(2);
    expect(sample(text, 'jobswipe_workers_scraped')).toBe(2);
    // Handed out in turn, each worker served about half: one worker's count alone would be about 20.
    expect(count(text) - before).toBe(40);
    // Process metrics from both (summed); the public port has no /metrics.
    expect(sample(text, 'jobswipe_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(await statusOf(`${base}/metrics`)).toBe(404);
    const checked = await promtool(['check', 'metrics'], text);
    expect(checked.output).toBe('');
    expect(checked.code).toBe(0);
  });
});
