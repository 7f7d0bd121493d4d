import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { createMetrics } from '../../src/metrics/registry.ts';
import { ROOT } from '../../../test/support/processes.ts';
import { PROMTOOL, promtool } from './scrape.ts';

/*
 * docs/monitoring/alerts.yml and dashboard.json: every metric they name is one we export, and every
 * expression parses. alerts.yml: valid rules (`promtool check rules`) that fire, and stay quiet, as
 * docs/monitoring/alerts.test.yml says (`promtool test rules`). promtool comes with Debian's
 * `prometheus` package; .ci/run installs it, so in CI a missing promtool fails.
 */

const RULES = `${ROOT}docs/monitoring/alerts.yml`;
const RULE_TESTS = `${ROOT}docs/monitoring/alerts.test.yml`;
const DASHBOARD = `${ROOT}docs/monitoring/dashboard.json`;

/** Every series name a scrape can hold: the registry's, histogram series, the WORKERS=N supervisor's, and Prometheus's `up`. */
async function exportedNames(): Promise<Set<string>> {
  const metrics = await createMetrics().registry.getMetricsAsJSON();
  const names = metrics.flatMap(({ name, type }) => (String(type) === 'histogram' ? [`${name}_bucket`, `${name}_count`, `${name}_sum`] : [name]));
  return new Set([...names, 'jobswipe_workers', 'jobswipe_workers_scraped', 'up']);
}

/** The metric names an expression reads (words followed by a selector or range, not functions or labels). */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\b(jobswipe_[a-z0-9_]+|up)\s*[{[]/g)].map((match) => match[1]!);
}

interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string }>;
}

const ALERTS = [
  'JobSwipeSigningKeyRotationOverdue',
  'JobSwipeSignInFailureSpike',
  'JobSwipeRefreshTokenReuseDetected',
  'JobSwipeAuditSealingLag',
  'JobSwipeBackchannelLogoutFailing',
  'JobSwipeHigh5xxRate',
  'JobSwipeDatabaseUnavailable',
  'JobSwipeRedisUnavailable',
  'JobSwipeMetricsDown',
  'JobSwipeClientSecretExpiring',
];

describe('alerting rules', () => {
  it('promtool is installed (apt-get install prometheus)', async () => {
    await expect(access(PROMTOOL), `${PROMTOOL}: install Debian's prometheus package (see README, "Run the tests")`).resolves.toBeUndefined();
  });

  it('promtool check rules accepts docs/monitoring/alerts.yml', async () => {
    const result = await promtool(['check', 'rules', RULES]);
    expect(result.output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(result.code).toBe(0);
  });

  it('promtool test rules passes docs/monitoring/alerts.test.yml, which fires every alert at least once', async () => {
    const result = await promtool(['test', 'rules', RULE_TESTS]);
    expect(result.output, result.output).toContain('SUCCESS');
    expect(result.code).toBe(0);
    const tests = await readFile(RULE_TESTS, 'utf8');
    for (const alert of ALERTS) expect(tests, alert).toMatch(new RegExp(`alertname: ${alert}\\n\\s+exp_alerts:\\n\\s+- exp_labels`));
  });

  it('the rules and the dashboard read only metrics we export', async () => {
    const exported = await exportedNames();
    const rules = await readFile(RULES, 'utf8');
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const exprs = [...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)), rules];
    const named = new Set(exprs.flatMap(namesIn));
    expect(named.size).toBeGreaterThan(15);
    for (const name of named) expect(exported, name).toContain(name);
    // Every fixed metric name of the issue is on the dashboard.
    for (const name of (await createMetrics().registry.getMetricsAsJSON()).map((metric) => metric.name).filter((name) => !/^jobswipe_(process|nodejs)_/.test(name))) {
      if (name === 'jobswipe_http_request_duration_seconds' || name === 'jobswipe_store_query_duration_seconds') expect(named, name).toContain(`${name}_bucket`);
      else expect(named, name).toContain(name);
    }
  });

  it('every dashboard query parses as PromQL (checked by promtool as recording rules)', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const queries = dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr));
    // Grafana's variables, as it substitutes them.
    const rules = queries.map((expr, index) => ({ record: `dashboard:query_${index}`, expr: expr.replaceAll('$__rate_interval', '1m').replaceAll('$job', '.*') }));
    const dir = await mkdtemp(join(tmpdir(), 'jobswipe-dashboard-'));
    try {
      const file = join(dir, 'dashboard-rules.yml');
      await writeFile(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
      const result = await promtool(['check', 'rules', file]);
      expect(result.output).toContain(`SUCCESS: ${queries.length} rules found`);
      expect(result.code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
