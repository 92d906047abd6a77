/**
 * TLS-RPT (RFC 8460) end to end: real deliveries under DANE through the
 * real DNSSEC bed (Knot + Unbound) count their results; two recorders (two
 * egress replicas) merge into the shared KV on a real nats-server; two
 * senders race for the day and each policy domain gets one report; the
 * published report is then delivered by the egress to a sink and read back:
 * the headers of RFC 8460 §5.3, the gzip'd attachment, and the JSON of §4.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { jetstreamManager } from '@nats-io/jetstream';
import type { EnvelopeDelivery } from '@sluice/bus';
import {
  decodeEnvelope,
  dedupIds,
  type Envelope,
  newQueueId,
  parseEnvelope,
  partIdOf,
  streams,
  subjects,
} from '@sluice/proto';
import { type DnssecResolver, startDnssecResolver, waitUntil } from '@sluice/test-harness';
import { deliverPart } from './deliver.ts';
import { createEgressService } from './egress-service.ts';
import { localReplies } from './local-replies.ts';
import { failureResultOf } from './tls-report.ts';
import { parseTlsRptRecord, reportFileName } from './tls-rpt-report.ts';
import { sendDailyReports, startTlsRpt, type TlsRptSenderDeps } from './tls-rpt-sender.ts';
import { type DayRecord, dayOf, resultsKey, TlsRptRecorder } from './tls-rpt-store.ts';
import {
  type CertWorkshop,
  createCertWorkshop,
  type EgressTlsBed,
  type KeyAndCert,
  startEgressTlsBed,
} from './tls-test-bed.ts';

let dnssec: DnssecResolver;
let bed: EgressTlsBed;
let certs: CertWorkshop;
let ee: KeyAndCert;

const BODY = Buffer.from('From: a@sender.test\r\nSubject: tlsrpt\r\n\r\nHello.\r\n');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** An HTTPS rua endpoint (RFC 8460 §5.4) with a test-CA certificate for localhost. */
let caPem: Buffer;
let ruaServer: Server;
let ruaPort: number;
const posted: Array<{ type?: string; body: Buffer }> = [];

before(async () => {
  certs = createCertWorkshop('sluice-tlsrpt-');
  ee = certs.selfSigned('ee', 'not-the-mx-name');
  caPem = certs.createCa('Sluice TLS-RPT test CA');
  const web = certs.issue('rua', ['localhost']);
  ruaServer = createServer({ key: web.key, cert: web.cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      posted.push({ type: req.headers['content-type'], body: Buffer.concat(chunks) });
      res.writeHead(201).end();
    });
  });
  await new Promise<void>((resolve) => ruaServer.listen(0, '127.0.0.1', resolve));
  ruaPort = (ruaServer.address() as { port: number }).port;
  const spki = new X509Certificate(ee.cert).publicKey.export({ type: 'spki', format: 'der' }) as Buffer;
  dnssec = await startDnssecResolver([
    {
      name: 'rpt.test',
      kind: 'signed',
      records: [
        'good MX 10 mx-good',
        'mx-good A 127.0.0.1',
        `_25._tcp.mx-good TLSA 3 1 1 ${sha256(spki)}`,
        '_smtp._tls.good TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.test"',
        'wrong MX 10 mx-wrong',
        'mx-wrong A 127.0.0.1',
        `_25._tcp.mx-wrong TLSA 3 1 1 ${'ab'.repeat(32)}`,
        '_smtp._tls.wrong TXT "v=TLSRPTv1;rua=mailto:rpt%2Bwrong@reports.test"',
        // Two TLSRPT records: RFC 8460 §3 says the domain does not implement TLS-RPT.
        'twice MX 10 mx-twice',
        'mx-twice A 127.0.0.1',
        `_25._tcp.mx-twice TLSA 3 1 1 ${sha256(spki)}`,
        '_smtp._tls.twice TXT "v=TLSRPTv1; rua=mailto:a@reports.test"',
        '_smtp._tls.twice TXT "v=TLSRPTv1; rua=mailto:b@reports.test"',
        `_smtp._tls.posted TXT "v=TLSRPTv1; rua=https://localhost:${ruaPort}/v1/tlsrpt"`,
      ],
    },
  ]);
  bed = await startEgressTlsBed('tlsrpt-test', dnssec.address);
});

after(async () => {
  ruaServer?.close();
  await bed?.stop();
  await dnssec?.stop();
  certs?.remove();
});

/** Every envelope now on the resolve stream that went to `to`. */
async function queuedTo(to: string): Promise<Array<{ envelope: Envelope; body?: Uint8Array }>> {
  const jsm = await jetstreamManager(bed.bus.nc);
  const { state } = await jsm.streams.info(streams.resolve.name);
  const out: Array<{ envelope: Envelope; body?: Uint8Array }> = [];
  for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(streams.resolve.name, { seq }).catch(() => null);
    if (!m) continue;
    const d = decodeEnvelope(m.data);
    if (d.envelope.recipients.some((r) => r.address === to)) out.push(d);
  }
  return out;
}

function senderDeps(instance: string): TlsRptSenderDeps {
  const config = {
    ...bed.config,
    egress: {
      ...bed.config.egress,
      tlsReports: {
        ...bed.config.egress.tlsReports,
        enabled: true,
        organizationName: 'Example Org',
        contact: 'mailto:tls@example.org',
      },
    },
  };
  return { bus: bed.bus, secureDns: bed.secureDns, config, log: bed.deps.log, instance };
}

describe('TLS-RPT record (RFC 8460 §3)', () => {
  test('rua: mailto (percent-decoded) and https; not one record or no v=TLSRPTv1: no reporting', () => {
    assert.deepEqual(
      parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:a%2Bb@x.test,https://r.x.test/v1/ ', 'other']),
      { mailto: ['a+b@x.test'], https: ['https://r.x.test/v1/'] },
    );
    assert.equal(
      parseTlsRptRecord(['v=TLSRPTv1; rua=mailto:a@x.test', 'v=TLSRPTv1; rua=mailto:b@x.test']),
      undefined,
    );
    assert.equal(parseTlsRptRecord(['v=spf1 -all']), undefined);
    assert.equal(parseTlsRptRecord(['v=TLSRPTv1; rua=ftp://x.test']), undefined);
  });
});

describe('TLS-RPT result types (RFC 8460 §4.3)', () => {
  test('from the failure replies of DANE and MTA-STS sessions', () => {
    const cases: Array<[string, 'dane' | 'mta-sts', string]> = [
      [localReplies.tlsRequired('mx: no STARTTLS'), 'mta-sts', 'starttls-not-supported'],
      [localReplies.tlsAuthFailed('mx: certificate has expired'), 'mta-sts', 'certificate-expired'],
      [
        localReplies.tlsAuthFailed("mx: Hostname/IP does not match certificate's altnames"),
        'mta-sts',
        'certificate-host-mismatch',
      ],
      [localReplies.tlsAuthFailed('mx: self-signed certificate'), 'mta-sts', 'certificate-not-trusted'],
      [
        localReplies.tlsAuthFailed('mx: no TLSA record matches the certificate chain'),
        'dane',
        'validation-failure',
      ],
      [
        localReplies.tlsAuthFailed('mx: the certificate is not for mx.x or x (DANE-TA name check)'),
        'dane',
        'certificate-host-mismatch',
      ],
    ];
    for (const [reply, policy, want] of cases) assert.equal(failureResultOf(reply, policy), want, reply);
  });
});

describe('TLS-RPT daily reports from real deliveries (two replicas)', () => {
  test('counted, merged, sent once per domain, delivered as a gzip attachment with the RFC 8460 fields', async () => {
    const replicaA = new TlsRptRecorder(bed.bus);
    const replicaB = new TlsRptRecorder(bed.bus);
    const sink = await bed.sinkWith(ee);
    const withA = { ...bed.deps, tlsRpt: replicaA };
    const withB = { ...bed.deps, tlsRpt: replicaB };
    const attempt = async (deps: typeof withA, domain: string) => {
      bed.deps = deps;
      return bed.attemptTo(domain, sink, BODY);
    };
    const original = bed.deps;
    try {
      assert.deepEqual((await attempt(withA, 'good.rpt.test')).disposition, { kind: 'ack' });
      assert.deepEqual((await attempt(withB, 'good.rpt.test')).disposition, { kind: 'ack' });
      assert.equal((await attempt(withA, 'wrong.rpt.test')).disposition.kind, 'retry');
      assert.equal((await attempt(withB, 'twice.rpt.test')).disposition.kind, 'ack');
    } finally {
      bed.deps = original;
    }
    await Promise.all([replicaA.flush(), replicaB.flush()]);
    const day = dayOf(new Date());
    const good = JSON.parse(
      (await bed.bus.tlsReportGet(resultsKey(day, 'good.rpt.test')))!.value,
    ) as DayRecord;
    const [policy] = Object.values(good.policies);
    assert.equal(policy?.type, 'tlsa');
    assert.equal(policy?.success, 2, 'both replicas counted into one record');
    assert.deepEqual(policy?.mxHosts, ['mx-good.rpt.test']);

    // Two replicas race for the day: each domain is taken by exactly one of them.
    const [a, b] = await Promise.all([
      sendDailyReports(day, senderDeps('egress-a')),
      sendDailyReports(day, senderDeps('egress-b')),
    ]);
    assert.deepEqual([...a.sent, ...b.sent].sort(), ['good.rpt.test', 'wrong.rpt.test']);
    assert.equal(a.skipped.length + b.skipped.length, 3, 'the other replica skipped all three domains');
    const again = await sendDailyReports(day, senderDeps('egress-a'));
    assert.deepEqual(again.sent, [], 'a second run sends nothing');

    const queued = await queuedTo('tlsrpt@reports.test');
    assert.equal(queued.length, 1, 'one report for good.rpt.test');
    assert.equal((await queuedTo('rpt+wrong@reports.test')).length, 1);
    assert.equal((await queuedTo('a@reports.test')).length + (await queuedTo('b@reports.test')).length, 0);
    const report = queued[0]!;
    assert.equal(report.envelope.mailFrom.address, '');
    assert.equal(report.envelope.source, 'dsn');

    // The egress delivers it like any message (here straight to a transport, as the resolver would route it).
    const rptSink = await bed.sinkWith();
    const d: EnvelopeDelivery = {
      envelope: {
        ...report.envelope,
        partId: `${report.envelope.id}`,
        route: { kind: 'smtp', name: 'reports', host: '127.0.0.1', port: rptSink.port, lmtp: false },
      },
      inlineBody: report.body,
      deliveryCount: 1,
      streamSeq: 0,
      working: () => {},
    };
    assert.deepEqual(await deliverPart(d, bed.deps), { kind: 'ack' });
    const [msg] = await rptSink.waitFor(1);
    const raw = msg!.raw.toString();
    assert.match(raw, /^TLS-Report-Domain: good\.rpt\.test\r$/m);
    assert.match(raw, /^TLS-Report-Submitter: example\.org\r$/m);
    assert.match(raw, /^Subject: Report Domain: good\.rpt\.test Submitter: example\.org Report-ID: <.+>\r$/m);
    assert.match(raw, /^Content-Type: multipart\/report; report-type="tlsrpt";/m);
    assert.match(raw, /^Content-Type: application\/tlsrpt\+gzip\r$/m);
    const fileName = reportFileName({ submitter: 'example.org', policyDomain: 'good.rpt.test', day });
    assert.match(fileName, /^example\.org!good\.rpt\.test!\d{10}!\d{10}!001\.json\.gz$/);
    assert.ok(raw.includes(`filename="${fileName}"`));
    const b64 =
      /Content-Transfer-Encoding: base64\r\n[^\r]*\r\n[^\r]*\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(raw);
    assert.ok(b64, 'a base64 attachment');
    const json = JSON.parse(gunzipSync(Buffer.from(b64[1]!.replace(/\r\n/g, ''), 'base64')).toString());
    assert.equal(json['organization-name'], 'Example Org');
    assert.equal(json['contact-info'], 'mailto:tls@example.org');
    assert.equal(json['date-range']['start-datetime'], `${day}T00:00:00Z`);
    assert.equal(json['date-range']['end-datetime'], `${day}T23:59:59Z`);
    assert.equal(typeof json['report-id'], 'string');
    assert.equal(json.policies.length, 1);
    const p = json.policies[0];
    assert.equal(p.policy['policy-type'], 'tlsa');
    assert.equal(p.policy['policy-domain'], 'good.rpt.test');
    assert.deepEqual(p.policy['policy-string'], [
      `3 1 1 ${sha256(new X509Certificate(ee.cert).publicKey.export({ type: 'spki', format: 'der' }) as Buffer)}`,
    ]);
    assert.deepEqual(p.summary, { 'total-successful-session-count': 2, 'total-failure-session-count': 0 });

    // The failing domain's report has the failure details of RFC 8460 §4.4.
    const wrong = JSON.parse(
      (await bed.bus.tlsReportGet(resultsKey(day, 'wrong.rpt.test')))!.value,
    ) as DayRecord;
    const [w] = Object.values(wrong.policies);
    assert.equal(w?.failure, 1);
    assert.equal(w?.failures[0]?.resultType, 'validation-failure');
    assert.equal(w?.failures[0]?.receivingMxHostname, 'mx-wrong.rpt.test');
    assert.equal(w?.failures[0]?.receivingIp, '127.0.0.1');
  });
});

describe('TLS-RPT timers (one egress replica)', () => {
  test('counts are flushed every interval and yesterday is reported after the configured hour', async () => {
    // A past day of our own, so the records of the test above do not interfere.
    const day = '2026-01-01';
    const recorder = new TlsRptRecorder(bed.bus);
    recorder.record({
      report: {
        type: 'sts',
        domain: 'good.rpt.test',
        strings: ['version: STSv1', 'mode: enforce'],
        mxPatterns: ['*.rpt.test'],
      },
      result: 'certificate-expired',
      mxHost: 'mx-good.rpt.test',
      ip: '127.0.0.1',
      detail: 'certificate has expired',
      at: new Date(`${day}T12:00:00Z`),
    });
    const deps = senderDeps('egress-timer');
    deps.config = {
      ...deps.config,
      egress: {
        ...deps.config.egress,
        tlsReports: { ...deps.config.egress.tlsReports, flushInterval: 1, hour: 1 },
      },
    };
    // "Now" is 02:00 the next day: past the hour, so the first tick sends the day's reports.
    deps.now = () => Date.parse('2026-01-02T02:00:00Z');
    const stop = startTlsRpt(recorder, deps);
    try {
      const queued = await waitUntil(
        'the report of the past day',
        async () => {
          const all = await queuedTo('tlsrpt@reports.test');
          return all.find(
            (q) => q.envelope.id === dedupIds.tlsReportQueueId(day, 'good.rpt.test', 'tlsrpt@reports.test'),
          );
        },
        { timeoutMs: 15_000 },
      );
      const text = Buffer.from(queued.body!).toString();
      const b64 = /filename="[^"]+"\r\n\r\n([A-Za-z0-9+/=\r\n]+?)\r\n--/.exec(text);
      const json = JSON.parse(gunzipSync(Buffer.from(b64![1]!.replace(/\r\n/g, ''), 'base64')).toString());
      const p = json.policies[0];
      assert.equal(p.policy['policy-type'], 'sts');
      assert.deepEqual(p.policy['mx-host'], ['*.rpt.test']);
      assert.deepEqual(p.summary, { 'total-successful-session-count': 0, 'total-failure-session-count': 1 });
      assert.deepEqual(p['failure-details'], [
        {
          'result-type': 'certificate-expired',
          'receiving-mx-hostname': 'mx-good.rpt.test',
          'receiving-ip': '127.0.0.1',
          'failed-session-count': 1,
          'additional-information': 'certificate has expired',
        },
      ]);
    } finally {
      await stop();
    }
  });
});

describe('TLS-RPT https: rua (RFC 8460 §5.4)', () => {
  test("the gzip'd JSON is POSTed as application/tlsrpt+gzip", async () => {
    const day = '2026-01-03';
    const recorder = new TlsRptRecorder(bed.bus);
    recorder.record({
      report: { type: 'tlsa', domain: 'posted.rpt.test', strings: ['3 1 1 00'] },
      result: 'success',
      mxHost: 'mx.posted.rpt.test',
      at: new Date(`${day}T08:00:00Z`),
    });
    await recorder.flush();
    const result = await sendDailyReports(day, { ...senderDeps('egress-post'), ca: caPem });
    assert.deepEqual(result.sent, ['posted.rpt.test']);
    assert.equal(posted.length, 1);
    assert.equal(posted[0]!.type, 'application/tlsrpt+gzip');
    const json = JSON.parse(gunzipSync(posted[0]!.body).toString());
    assert.equal(json.policies[0].policy['policy-domain'], 'posted.rpt.test');
    assert.deepEqual(json.policies[0].summary, {
      'total-successful-session-count': 1,
      'total-failure-session-count': 0,
    });
  });
});

describe('TLS-RPT in the egress service (egress.tlsReports.enabled)', () => {
  test('deliveries from the deliver stream are counted and flushed to the shared store when the service stops', async () => {
    const day = dayOf(new Date());
    const key = resultsKey(day, 'good.rpt.test');
    const before = JSON.parse((await bed.bus.tlsReportGet(key))!.value) as DayRecord;
    const successBefore = Object.values(before.policies)[0]!.success;
    const sink = await bed.sinkWith(ee);
    const { config } = senderDeps('egress-service');
    const running = await createEgressService({ mxPort: sink.port }).start({ ...bed.deps, config });
    let stopped = false;
    try {
      const id = newQueueId();
      const stored = await bed.bus.storeBody(id, BODY);
      const rcpt = 'svc@good.rpt.test';
      const envelope = parseEnvelope({
        v: 1,
        id,
        partId: partIdOf(id, 'mx:good.rpt.test', [rcpt]),
        receivedAt: new Date().toISOString(),
        source: 'mx',
        receivedBy: 'mx.example.org',
        client: { ip: '192.0.2.1', helo: 'client.test' },
        mailFrom: { address: 'sender@example.org' },
        recipients: [{ address: rcpt, original: rcpt }],
        route: { kind: 'mx', domain: 'good.rpt.test' },
        body: stored.ref,
        prepend: [],
      });
      await bed.bus.publishEnvelope(subjects.deliver, envelope, stored.inline, {
        msgId: dedupIds.deliver(envelope.partId!),
      });
      await sink.waitFor(1, 20_000);
      await running.stop();
      stopped = true;
      const after = JSON.parse((await bed.bus.tlsReportGet(key))!.value) as DayRecord;
      assert.equal(Object.values(after.policies)[0]!.success, successBefore + 1);
    } finally {
      if (!stopped) await running.stop();
    }
  });
});
