/**
 * TLS-RPT style accounting (RFC 8460) of outbound TLS policy results: every
 * session opened or refused under a policy counts once in
 * sluice_tls_results_total{policy, result}, with RFC 8460 §4.3 result types
 * (starttls-not-supported, certificate-not-trusted/validation-failure,
 * tlsa-invalid, dnssec-invalid, sts-policy-invalid...) or "success"; the
 * policy domain and host go to the log. With egress.tlsReports enabled, the
 * result is also counted per policy domain and day for the daily aggregate
 * report (tls-rpt-store.ts, tls-rpt-sender.ts).
 */
import type { Metrics } from '@sluice/telemetry';
import type { PolicyKind, ReportedPolicy } from './tls-policy.ts';
import type { TlsRptRecorder } from './tls-rpt-store.ts';

export interface TlsResult {
  policy: PolicyKind;
  /** "success" or an RFC 8460 §4.3 result type. */
  result: string;
  domain?: string;
  host?: string;
  detail?: string;
  /** The policy as a TLS-RPT report names it (absent: not reported). */
  report?: ReportedPolicy;
  /** The MX host name and the address connected to (failure-details). */
  mxHost?: string;
  ip?: string;
}

/** The RFC 8460 §4.3 result type for a session that failed under a policy, from its local reply. */
export function failureResultOf(reply: string, policy: PolicyKind): string {
  if (/ 4\.7\.10 /.test(reply)) return 'starttls-not-supported';
  if (/ 4\.7\.5 /.test(reply)) {
    // Node's and dane-verify.ts' reasons, as far as they tell the §4.3 types apart.
    if (/certificate has expired|outside its validity period/i.test(reply)) return 'certificate-expired';
    if (/Hostname\/IP does not match|the certificate is not for /i.test(reply))
      return 'certificate-host-mismatch';
    return policy === 'dane' ? 'validation-failure' : 'certificate-not-trusted';
  }
  return 'validation-failure';
}

export function recordTlsResult(
  metrics: Pick<Metrics, 'tlsResults'>,
  log: { info(o: object, msg: string): void; warn(o: object, msg: string): void },
  r: TlsResult,
  rpt?: Pick<TlsRptRecorder, 'record'>,
): void {
  metrics.tlsResults.inc({ policy: r.policy, result: r.result });
  if (rpt && r.report) {
    rpt.record({
      report: r.report,
      result: r.result,
      mxHost: r.mxHost,
      ip: r.ip,
      detail: r.detail,
      at: new Date(),
    });
  }
  if (r.policy === 'none') return;
  const fields = {
    tlsPolicy: r.policy,
    tlsResult: r.result,
    policyDomain: r.domain ?? r.report?.domain,
    host: r.host,
    detail: r.detail,
  };
  if (r.result === 'success') log.info(fields, 'outbound TLS policy satisfied');
  else log.warn(fields, 'outbound TLS policy failure (TLS-RPT)');
}
