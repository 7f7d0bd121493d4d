import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Every metric's prefix, the process defaults' too (dashboards and alerts depend on the names). */
export const METRIC_PREFIX = 'jobswipe_';

const LINT_FAILING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** Request durations: a discovery answer takes about a millisecond, a password check about 200 ms. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const QUERY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * One process's metrics, in a registry of their own (several servers may share a test process).
 * Counters and histograms are summed over WORKERS; gauges read from the stores are the same in every
 * worker, so one worker's value stands for all (`first`), and a store counts as up only if it is up
 * for every worker (`min`). docs/monitoring.md says what each one means.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  // Gauges named like counters, which `promtool check metrics` refuses; the resource counts by type stay.
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(`${METRIC_PREFIX}${name}`);
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({
      name: 'jobswipe_http_requests_total',
      help: 'HTTP requests answered on the public port, by route pattern, method and status.',
      labelNames: ['route', 'method', 'status'] as const,
      registers,
    }),
    httpDuration: new Histogram({
      name: 'jobswipe_http_request_duration_seconds',
      help: 'Time to answer an HTTP request on the public port, by route pattern.',
      labelNames: ['route'] as const,
      buckets: REQUEST_BUCKETS,
      registers,
    }),
    signIns: new Counter({
      name: 'jobswipe_sign_ins_total',
      help: 'Password sign-ins on the login page, by outcome: success, failure, rate_limited.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    tokensIssued: new Counter({
      name: 'jobswipe_tokens_issued_total',
      help: 'Token responses of the token endpoint, by grant type (refresh_token counts rotations; a replay within the grace period counts nothing).',
      labelNames: ['grant_type'] as const,
      registers,
    }),
    tokenReuse: new Counter({
      name: 'jobswipe_token_reuse_detected_total',
      help: 'Used refresh tokens or authorization codes presented again; each revoked its grant.',
      registers,
    }),
    tokensRevoked: new Counter({
      name: 'jobswipe_tokens_revoked_total',
      help: 'Tokens revoked by their client at the revocation endpoint (RFC 7009).',
      registers,
    }),
    rateLimited: new Counter({
      name: 'jobswipe_rate_limited_total',
      help: 'Requests refused by a rate limit, by limit (docs/security.md lists them).',
      labelNames: ['limit'] as const,
      registers,
    }),
    backchannelDeliveries: new Counter({
      name: 'jobswipe_backchannel_logout_deliveries_total',
      help: 'Back-channel logout tokens sent to relying parties, by outcome (delivered, failed) after retries.',
      labelNames: ['outcome'] as const,
      registers,
    }),
    usageRecorded: new Counter({
      name: 'jobswipe_usage_recorded_total',
      help: 'Usage recorded through the usage API, in units of the meter (repeats and refusals count nothing).',
      labelNames: ['meter'] as const,
      registers,
    }),
    storeQueryDuration: new Histogram({
      name: 'jobswipe_store_query_duration_seconds',
      help: 'Time of one store operation: a database query, or a Redis operation of the provider storage.',
      labelNames: ['store'] as const,
      buckets: QUERY_BUCKETS,
      registers,
    }),
    activeSessions: new Gauge({
      name: 'jobswipe_active_sessions',
      help: 'Sign-in sessions not ended and not expired.',
      aggregator: 'first',
      registers,
    }),
    signingKeyAge: new Gauge({
      name: 'jobswipe_signing_key_age_seconds',
      help: 'How long the current signing key has been signing.',
      aggregator: 'first',
      registers,
    }),
    signingKeyNextRotation: new Gauge({
      name: 'jobswipe_signing_key_next_rotation_seconds',
      help: 'Time until the next key takes over; negative when the rotation is overdue.',
      aggregator: 'first',
      registers,
    }),
    refreshTokensExpiring: new Gauge({
      name: 'jobswipe_refresh_tokens_expiring',
      help: 'Live refresh tokens expiring within the window (24h, 7d).',
      labelNames: ['within'] as const,
      aggregator: 'first',
      registers,
    }),
    clientSecretsExpiring: new Gauge({
      name: 'jobswipe_client_secrets_expiring',
      help: 'Clients whose secret expires (client_secret_expires_at) within the window (24h, 7d), or has expired.',
      labelNames: ['within'] as const,
      aggregator: 'first',
      registers,
    }),
    auditSealLag: new Gauge({
      name: 'jobswipe_audit_seal_lag_seconds',
      help: 'Age of the oldest audit event not yet sealed into the hash chain; 0 when all are sealed.',
      aggregator: 'first',
      registers,
    }),
    storeUp: new Gauge({
      name: 'jobswipe_store_up',
      help: 'Whether a store answers (1) or not (0): database, redis (when configured).',
      labelNames: ['store'] as const,
      aggregator: 'min',
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
