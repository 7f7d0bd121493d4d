/**
 * A low-rate probe of one cheap endpoint, in its own process: `probe.ts URL SECONDS RATE` sends the
 * result ({ p50, p99, requests, errors }, ms) to the parent over IPC. The harness runs it idle and
 * while sign-ins load the target, to show whether password hashing holds up other requests.
 */
import autocannon from 'autocannon';

const [url = '', seconds = '5', rate = '50'] = process.argv.slice(2);

autocannon({ url, connections: 2, overallRate: Number(rate), duration: Number(seconds), timeout: 20 }, (error, result) => {
  if (error) {
    process.stderr.write(`probe: ${String(error)}\n`);
    process.exit(1);
  }
  process.send?.({ p50: result.latency.p50, p99: result.latency.p99, requests: result.requests.total, errors: result.errors + result.non2xx }, () => process.exit(0));
});
