/**
 * TLS-RPT style accounting (RFC 8460) of outbound TLS policy results: every
 * session opened or refused under a policy counts once in
 * sluice_tls_results_total{policy, result}, with RFC 8460 §4.3 result types
 * (starttls-not-supported, certificate-not-trusted/validation-failure,
 * tlsa-invalid, dnssec-invalid, sts-policy-invalid...) or "success"; the
 * policy domain and host go to the log. The daily aggregate JSON report
 * (RFC 8460 §4) is not produced yet: the counters and logs carry its data.
 */
import type { Metrics } from '@sluice/telemetry';
import type { PolicyKind } from './tls-policy.ts';

export interface TlsResult {
  policy: PolicyKind;
  /** "success" or an RFC 8460 §4.3 result type. */
  result: string;
  domain?: string;
  host?: string;
  detail?: string;
}

/** The RFC 8460 §4.3 result type for a session that failed under a policy, from its local reply. */
export function failureResultOf(reply: string, policy: PolicyKind): string {
  if (/ 4\.7\.10 /.test(reply)) return 'starttls-not-supported';
  if (/ 4\.7\.5 /.test(reply)) return policy === 'dane' ? 'validation-failure' : 'certificate-not-trusted';
  return 'validation-failure';
}

export function recordTlsResult(
  metrics: Pick<Metrics, 'tlsResults'>,
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void },
  r: TlsResult,
): void {
  metrics.tlsResults.inc({ policy: r.policy, result: r.result });
  if (r.policy === 'none') return;
  const fields = {
    tlsPolicy: r.policy,
    tlsResult: r.result,
    policyDomain: r.domain,
    host: r.host,
    detail: r.detail,
  };
  if (r.result === 'success') log.info(fields, 'outbound TLS policy satisfied');
  else log.warn(fields, 'outbound TLS policy failure (TLS-RPT)');
}
