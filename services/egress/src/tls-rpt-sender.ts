/**
 * Sends the daily TLS-RPT reports (RFC 8460) and runs the egress' TLS-RPT
 * timers:
 *
 *   - every egress.tlsReports.flushInterval seconds each replica merges its
 *     counts into the shared store (tls-rpt-store.ts);
 *   - after egress.tlsReports.hour (UTC) each replica looks at yesterday's
 *     policy domains. For each, the first replica to create the key
 *     `sent.<day>.<domain>` (compare-and-set) sends the report; the others
 *     skip it, so every domain gets one report a day however many replicas
 *     run. The report goes to the domain's rua (`_smtp._tls` TXT, read
 *     through the validating resolver): as a message into the pipeline for
 *     each mailto: address (published to the resolve stream with the null
 *     sender, source "dsn" — generated mail that never gets a DSN itself —
 *     and a Nats-Msg-Id naming the day, domain and address, so a replay is
 *     one message; the rewriter DKIM-signs it, RFC 8460 §5.3), and POSTed
 *     as application/tlsrpt+gzip to each https: address (§5.4).
 *
 * A replica that dies between taking the marker and publishing leaves that
 * day's report unsent (reports are best effort: §5); its counts stay in the
 * store for three days.
 */
import { request } from 'node:https';
import { gzipSync } from 'node:zlib';
import type { BusClient } from '@sluice/bus';
import type { SluiceConfig } from '@sluice/config';
import type { SecureDns } from '@sluice/dns';
import { dedupIds } from '@sluice/proto';
import { publishGenerated } from './notify-sender.ts';
import { buildReport, buildReportMessage, parseTlsRptRecord } from './tls-rpt-report.ts';
import { type DayRecord, dayOf, resultsKey, sentKey, type TlsRptRecorder } from './tls-rpt-store.ts';

export interface TlsRptSenderDeps {
  bus: Pick<
    BusClient,
    'tlsReportGet' | 'tlsReportCreate' | 'tlsReportKeys' | 'storeBody' | 'publishEnvelope'
  >;
  secureDns: Pick<SecureDns, 'txt'>;
  config: SluiceConfig;
  log: {
    info(o: object, msg: string): void;
    warn(o: object, msg: string): void;
    error(o: object, msg: string): void;
  };
  instance: string;
  now?: () => number;
  /** Extra CAs for https: rua endpoints (egress.mtaSts.caFile). */
  ca?: Buffer;
}

export interface DaySendResult {
  /** Policy domains this replica reported. */
  sent: string[];
  /** Policy domains another replica had taken. */
  skipped: string[];
}

/** Send the reports of one UTC day (`YYYY-MM-DD`) that no other replica has taken. */
export async function sendDailyReports(day: string, deps: TlsRptSenderDeps): Promise<DaySendResult> {
  const out: DaySendResult = { sent: [], skipped: [] };
  const prefix = resultsKey(day, '');
  for (const key of await deps.bus.tlsReportKeys(`${prefix}>`)) {
    const domain = key.slice(prefix.length);
    const at = new Date((deps.now ?? Date.now)()).toISOString();
    if (!(await deps.bus.tlsReportCreate(sentKey(day, domain), JSON.stringify({ by: deps.instance, at })))) {
      out.skipped.push(domain);
      continue;
    }
    try {
      if (await sendOne(day, domain, key, deps)) out.sent.push(domain);
    } catch (err) {
      deps.log.error({ err, policyDomain: domain, day }, 'TLS-RPT report could not be sent');
    }
  }
  return out;
}

async function sendOne(day: string, domain: string, key: string, deps: TlsRptSenderDeps): Promise<boolean> {
  const txt = await deps.secureDns.txt(`_smtp._tls.${domain}`);
  const rua = txt.rcode === 'noerror' ? parseTlsRptRecord(txt.records) : undefined;
  if (!rua) {
    deps.log.info({ policyDomain: domain, day }, 'no TLSRPT record (RFC 8460 §3): no report');
    return false;
  }
  const stored = await deps.bus.tlsReportGet(key);
  if (!stored) return false;
  const record = JSON.parse(stored.value) as DayRecord;
  const cfg = deps.config.egress.tlsReports;
  const primary = deps.config.domains.primary;
  const ctx = {
    organizationName: cfg.organizationName ?? primary,
    contactInfo: cfg.contact ?? `mailto:postmaster@${primary}`,
    submitter: cfg.submitter ?? primary,
    day,
    policyDomain: domain,
  };
  const report = buildReport(ctx, record);
  const now = new Date((deps.now ?? Date.now)());
  for (const to of rua.mailto) {
    const queueId = dedupIds.tlsReportQueueId(day, domain, to);
    const bytes = buildReportMessage({
      ...ctx,
      from: cfg.from ?? `noreply-tlsrpt@${primary}`,
      to,
      queueId,
      hostname: deps.config.hostname,
      report,
      now,
    });
    await publishGenerated({ queueId, to, bytes, msgId: dedupIds.tlsReport(day, domain, to) }, deps);
  }
  for (const url of rua.https) {
    try {
      await postReport(url, gzipSync(Buffer.from(JSON.stringify(report))), deps.ca);
    } catch (err) {
      deps.log.warn({ err, policyDomain: domain, url }, 'TLS-RPT report POST failed');
    }
  }
  deps.log.info(
    { policyDomain: domain, day, mailto: rua.mailto.length, https: rua.https.length },
    'TLS-RPT report sent',
  );
  return true;
}

/** RFC 8460 §5.4: POST the gzip'd report; any 2xx is success. */
function postReport(url: string, body: Buffer, ca?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: { 'Content-Type': 'application/tlsrpt+gzip', 'Content-Length': body.length },
        timeout: 30_000,
        ...(ca ? { ca } : {}),
      },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        if (code >= 200 && code < 300) resolve();
        else reject(new Error(`HTTP ${code}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * The timers of one egress replica: the periodic flush of its counts, and
 * the daily send after the configured hour. Returns a stop function that
 * flushes what is left.
 */
export function startTlsRpt(recorder: TlsRptRecorder, deps: TlsRptSenderDeps): () => Promise<void> {
  const cfg = deps.config.egress.tlsReports;
  const now = deps.now ?? Date.now;
  let lastDay: string | undefined;
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      await recorder.flush();
      const t = new Date(now());
      const yesterday = dayOf(new Date(t.getTime() - 86_400_000));
      if (t.getUTCHours() >= cfg.hour && lastDay !== yesterday) {
        await sendDailyReports(yesterday, deps);
        lastDay = yesterday;
      }
    } catch (err) {
      deps.log.warn({ err }, 'TLS-RPT flush or send failed: retried at the next interval');
    } finally {
      busy = false;
    }
  };
  const timer = setInterval(() => void tick(), cfg.flushInterval * 1000);
  timer.unref();
  return async () => {
    clearInterval(timer);
    try {
      await recorder.flush();
    } catch (err) {
      deps.log.warn({ err }, 'TLS-RPT counts could not be flushed at stop');
    }
  };
}
