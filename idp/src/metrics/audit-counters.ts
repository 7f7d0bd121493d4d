import type { AuditEvent } from '../audit/events.ts';
import type { Metrics } from './registry.ts';

const SIGN_IN_OUTCOMES = { 'login.success': 'success', 'login.failure': 'failure', 'login.rate_limited': 'rate_limited' } as const;

/**
 * The counters that follow audit events: every sign-in, token and revocation is recorded there
 * once, by whichever page or provider event saw it, so counting there counts each exactly once.
 * Label values come from our own event details (grant types the provider accepted), never from raw input.
 */
export function countAuditEvents(metrics: Metrics): (event: AuditEvent) => void {
  return (event) => {
    switch (event.type) {
      case 'login.success':
      case 'login.failure':
      case 'login.rate_limited':
        metrics.signIns.inc({ outcome: SIGN_IN_OUTCOMES[event.type] });
        break;
      case 'token.issued':
        metrics.tokensIssued.inc({ grant_type: String(event.details?.['grant_type'] ?? 'unknown') });
        break;
      case 'token.refreshed':
        metrics.tokensIssued.inc({ grant_type: 'refresh_token' });
        break;
      case 'token.reuse_detected':
        metrics.tokenReuse.inc();
        break;
      case 'token.revoked':
        metrics.tokensRevoked.inc();
        break;
      default:
        break;
    }
  };
}
