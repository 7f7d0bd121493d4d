import cluster from 'node:cluster';
import { AggregatorRegistry, Gauge, Registry } from 'prom-client';

/*
 * WORKERS=N: the primary serves the metrics listener and asks every worker for its metrics over the
 * cluster's IPC channel, then sums counters and histograms (gauges as each declares). A worker that
 * does not answer in time (one starting or stopping) is left out of that scrape rather than failing it.
 */

const REQUEST = 'jobswipe:metrics-request';
const RESPONSE = 'jobswipe:metrics-response';
/** How long the primary waits for the workers' answers. */
const ANSWER_TIMEOUT_MS = 3_000;

type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

interface Request {
  type: typeof REQUEST;
  id: number;
}

interface Response {
  type: typeof RESPONSE;
  id: number;
  metrics?: WorkerMetrics;
  error?: string;
}

const isRequest = (message: unknown): message is Request => (message as Request | null)?.type === REQUEST;
const isResponse = (message: unknown): message is Response => (message as Response | null)?.type === RESPONSE;

/** In a worker: answers the primary's requests with this registry's metrics (refreshed first). Returns the unsubscribe. */
export function answerMetricsRequests(registry: Registry, refresh: () => Promise<void>): () => void {
  // With a callback, a channel closed meanwhile (the worker is stopping) is an ignored error, not a thrown one.
  const answer = (response: Response) => process.send?.(response, undefined, undefined, () => {});
  const onMessage = (message: unknown) => {
    if (!isRequest(message)) return;
    refresh()
      .then(() => registry.getMetricsAsJSON())
      .then(
        (metrics) => answer({ type: RESPONSE, id: message.id, metrics }),
        (error: unknown) => answer({ type: RESPONSE, id: message.id, error: (error as Error).message }),
      );
  };
  process.on('message', onMessage);
  return () => process.off('message', onMessage);
}

/**
 * In the primary: one scrape of the whole process group, in the Prometheus text format, with
 * `jobswipe_workers` (running) and `jobswipe_workers_scraped` (whose metrics this scrape holds).
 */
export function clusterScraper(): () => Promise<{ contentType: string; body: string }> {
  let nextId = 0;
  const own = new Registry();
  const running = new Gauge({ name: 'jobswipe_workers', help: 'Server worker processes running (WORKERS).', registers: [own] });
  const scraped = new Gauge({ name: 'jobswipe_workers_scraped', help: 'Server workers whose metrics this scrape holds (a starting or stuck worker is left out).', registers: [own] });
  return async () => {
    const id = nextId++;
    const workers = Object.values(cluster.workers ?? {}).filter((worker) => worker?.isConnected());
    const answers = await Promise.all(
      workers.map(
        (worker) =>
          new Promise<WorkerMetrics | undefined>((resolve) => {
            const done = (metrics: WorkerMetrics | undefined) => {
              clearTimeout(timer);
              worker!.off('message', onMessage);
              resolve(metrics);
            };
            const onMessage = (message: unknown) => {
              if (isResponse(message) && message.id === id) done(message.metrics);
            };
            const timer = setTimeout(() => done(undefined), ANSWER_TIMEOUT_MS);
            worker!.on('message', onMessage);
            try {
              worker!.send({ type: REQUEST, id } satisfies Request);
            } catch {
              done(undefined);
            }
          }),
      ),
    );
    const answered = answers.filter((metrics): metrics is WorkerMetrics => metrics !== undefined);
    if (workers.length > 0 && answered.length === 0) throw new Error('no server worker answered');
    running.set(workers.length);
    scraped.set(answered.length);
    const aggregated = AggregatorRegistry.aggregate([...answered, await own.getMetricsAsJSON()]);
    return { contentType: aggregated.contentType, body: await aggregated.metrics() };
  };
}
