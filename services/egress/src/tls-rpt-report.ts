/**
 * TLS-RPT (RFC 8460) report building, all pure functions:
 *
 *   - parseTlsRptRecord: the policy domain's `_smtp._tls` TXT record (§3):
 *     exactly one record starting "v=TLSRPTv1", fields split on ";", rua a
 *     comma-separated list of mailto: and https: URIs (commas and
 *     semicolons inside a URI are %-encoded);
 *   - buildReport: the aggregate JSON of one policy domain and UTC day (§4:
 *     organization-name, date-range, contact-info, report-id, policies[]
 *     with policy-type tlsa/sts, policy-string, policy-domain, mx-host,
 *     summary counts and failure-details);
 *   - reportFileName / buildReportMessage: the gzip'd report as an email
 *     (§5.3): TLS-Report-Domain and TLS-Report-Submitter fields, the Subject
 *     "Report Domain: ... Submitter: ... Report-ID: <...>", multipart/report
 *     with report-type="tlsrpt" and the application/tlsrpt+gzip attachment
 *     named sender!policy-domain!begin!end!unique-id.json.gz (§5.3, seconds
 *     since the epoch).
 *
 * Every text that comes from outside (domain names, the record, failure
 * details) is made single-line before it reaches a header.
 */
import { gzipSync } from 'node:zlib';
import { fieldText, rfc5322Date } from './dsn.ts';
import type { DayRecord } from './tls-rpt-store.ts';

export interface TlsRptRecord {
  mailto: string[];
  https: string[];
}

/** RFC 8460 §3; undefined when the domain has no (single, valid) TLSRPT record. */
export function parseTlsRptRecord(txts: readonly string[]): TlsRptRecord | undefined {
  const records = txts.filter((t) => /^v=TLSRPTv1\s*(;|$)/.test(t));
  // §3: "If the number of resulting records is not one, senders MUST assume the recipient domain does not implement TLSRPT."
  if (records.length !== 1) return undefined;
  const fields = new Map<string, string>();
  for (const part of records[0]!.split(';')) {
    const i = part.indexOf('=');
    if (i > 0) fields.set(part.slice(0, i).trim().toLowerCase(), part.slice(i + 1).trim());
  }
  const rua = fields.get('rua');
  if (!rua) return undefined;
  const out: TlsRptRecord = { mailto: [], https: [] };
  for (const raw of rua.split(',')) {
    const uri = raw.trim();
    if (/^mailto:/i.test(uri)) {
      let address: string;
      try {
        address = decodeURIComponent(uri.slice(7).split('?')[0]!);
      } catch {
        continue;
      }
      if (/^[^\s@<>\r\n\0]+@[^\s@<>\r\n\0]+$/.test(address)) out.mailto.push(address);
    } else if (/^https:\/\//i.test(uri)) {
      out.https.push(uri);
    }
  }
  return out.mailto.length + out.https.length > 0 ? out : undefined;
}

export interface ReportContext {
  organizationName: string;
  contactInfo: string;
  /** Our domain: TLS-Report-Submitter and the report id's right side. */
  submitter: string;
  /** The UTC day, YYYY-MM-DD. */
  day: string;
  policyDomain: string;
}

const dayStart = (day: string) => new Date(`${day}T00:00:00Z`);
const dayEnd = (day: string) => new Date(`${day}T23:59:59Z`);
const iso = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function reportId(ctx: Pick<ReportContext, 'day' | 'policyDomain' | 'submitter'>): string {
  return `${ctx.day}T00:00:00Z+${ctx.policyDomain}@${ctx.submitter}`;
}

/** RFC 8460 §4.4 aggregate report JSON of one policy domain's day. */
export function buildReport(ctx: ReportContext, day: DayRecord): object {
  return {
    'organization-name': ctx.organizationName,
    'date-range': { 'start-datetime': iso(dayStart(ctx.day)), 'end-datetime': iso(dayEnd(ctx.day)) },
    'contact-info': ctx.contactInfo,
    'report-id': reportId(ctx),
    policies: Object.values(day.policies).map((p) => ({
      policy: {
        'policy-type': p.type,
        'policy-string': p.strings,
        'policy-domain': ctx.policyDomain,
        ...(p.mxHosts.length > 0 ? { 'mx-host': p.mxHosts } : {}),
      },
      summary: {
        'total-successful-session-count': p.success,
        'total-failure-session-count': p.failure,
      },
      ...(p.failures.length > 0
        ? {
            'failure-details': p.failures.map((f) => ({
              'result-type': f.resultType,
              ...(f.receivingMxHostname ? { 'receiving-mx-hostname': f.receivingMxHostname } : {}),
              ...(f.receivingIp ? { 'receiving-ip': f.receivingIp } : {}),
              'failed-session-count': f.count,
              ...(f.detail ? { 'additional-information': f.detail } : {}),
            })),
          }
        : {}),
    })),
  };
}

/** §5.3: sender "!" policy-domain "!" begin-timestamp "!" end-timestamp "!" unique-id ".json.gz". */
export function reportFileName(ctx: Pick<ReportContext, 'submitter' | 'policyDomain' | 'day'>): string {
  const begin = Math.floor(dayStart(ctx.day).getTime() / 1000);
  const end = Math.floor(dayEnd(ctx.day).getTime() / 1000);
  const safe = (s: string) => s.replace(/[^A-Za-z0-9.-]/g, '_');
  return `${safe(ctx.submitter)}!${safe(ctx.policyDomain)}!${begin}!${end}!001.json.gz`;
}

export interface ReportMessageInput extends ReportContext {
  from: string;
  to: string;
  /** Our queue id of the message (its Message-ID). */
  queueId: string;
  hostname: string;
  report: object;
  now: Date;
}

/** The report as an email (RFC 8460 §5.3), CRLF line ends, the JSON gzip'd and base64-encoded. */
export function buildReportMessage(input: ReportMessageInput): Buffer {
  const domain = fieldText(input.policyDomain, 255);
  const submitter = fieldText(input.submitter, 255);
  const id = fieldText(reportId(input), 600);
  const gz = gzipSync(Buffer.from(JSON.stringify(input.report)));
  const boundary = `tlsrpt/${input.queueId}`;
  const head = [
    `From: TLS reporting <${fieldText(input.from, 300)}>`,
    `To: <${fieldText(input.to, 500)}>`,
    `Subject: Report Domain: ${domain} Submitter: ${submitter} Report-ID: <${id}>`,
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: <${input.queueId}@${fieldText(input.hostname, 255)}>`,
    `TLS-Report-Domain: ${domain}`,
    `TLS-Report-Submitter: ${submitter}`,
    'Auto-Submitted: auto-generated',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type="tlsrpt";\r\n\tboundary="${boundary}"`,
  ];
  const text = [
    `This is an aggregate TLS report (RFC 8460) from ${submitter}`,
    `for ${domain}, ${input.day} (UTC).`,
  ].join('\r\n');
  const base64 = gz.toString('base64').replace(/.{76}/g, '$&\r\n');
  return Buffer.from(
    [
      `${head.join('\r\n')}\r\n\r\nThis is a multi-part message in MIME format.\r\n`,
      `--${boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n${text}\r\n`,
      `--${boundary}\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n` +
        `Content-Disposition: attachment;\r\n\tfilename="${reportFileName(input)}"\r\n\r\n${base64.replace(/\r\n$/, '')}\r\n`,
      `--${boundary}--\r\n`,
    ].join(''),
  );
}
