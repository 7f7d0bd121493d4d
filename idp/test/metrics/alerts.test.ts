import { access, readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../../test/support/processes.ts';
import { PROMTOOL, promtool } from './scrape.ts';

/*
 * docs/monitoring/alerts.yml: valid rules (`promtool check rules`) that fire, and stay quiet, as
 * docs/monitoring/alerts.test.yml says (`promtool test rules`). promtool comes with Debian's
 * `prometheus` package; .ci/run installs it, so in CI a missing promtool fails.
 */

const RULES = `${ROOT}docs/monitoring/alerts.yml`;
const RULE_TESTS = `${ROOT}docs/monitoring/alerts.test.yml`;

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
});
