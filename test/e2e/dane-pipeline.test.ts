/**
 * DANE through the whole pipeline (issue 9): every stage in one process with a
 * real nats-server, mail sent in by SMTP and forwarded out, the egress' MX,
 * address and TLSA lookups going to a real validating resolver
 * (egress.dnsResolver = dns.servers = test/harness dnssec-resolver.ts: Knot
 * signs the zone, Unbound validates it), and a real SMTP sink with STARTTLS as
 * the MX. `sluice queue` is run as the CLI runs it.
 *
 *   - good.dane.test: its MX has a TLSA 3 1 1 matching the sink's certificate:
 *     delivered over TLS, the timeline's delivery event says tls "dane";
 *     (The ingress' own lookups go to a plain test DNS server: dns.servers.)
 *   - wrong.dane.test: its MX's TLSA names the key of a renewed certificate the
 *     MX does not serve yet: deferred (never sent in clear, never to an
 *     unauthenticated host) and listed by `sluice queue list` with the 4.7.5
 *     reply; once the MX serves the renewed certificate, `sluice queue retry`
 *     delivers it over DANE without waiting for the next attempt.
 *
 * Deliberately not here: the per-case DANE rules (bogus answers, DANE-TA,
 * stripped STARTTLS), which services/egress/src/dane.test.ts covers one attempt
 * at a time.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { createDnsLookup, createEgressService } from '@sluice/egress';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type DnsServer,
  type DnssecResolver,
  type NatsTestServer,
  type SmtpSink,
  sendMail,
  startDnsServer,
  startDnssecResolver,
  startNats,
  startSmtpSink,
  waitUntil,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import {
  type CertWorkshop,
  createCertWorkshop,
  type KeyAndCert,
} from '../../services/egress/src/tls-test-bed.ts';
import { devNull, ingressPort, queueCli } from './helpers.ts';

const dir = mkdtempSync(join(tmpdir(), 'sluice-dane-e2e-'));
let certs: CertWorkshop;
let renewed: KeyAndCert;
let dnssec: DnssecResolver;
let plainDns: DnsServer;
let nats: NatsTestServer;
let mx: SmtpSink;
let senders: SmtpSink;
let rt: Runtime;
let configFile: string;

const queue = (args: string[]) => queueCli(configFile, args);

async function send(to: string, subject: string): Promise<string> {
  const r = await sendMail({
    port: ingressPort(rt),
    from: 'someone@sender.test',
    to: [to],
    subject,
    text: subject,
  });
  const m = /queued as ([0-9A-Z]{10,40})/.exec(r.response);
  assert.ok(m, `accepted: ${r.response}`);
  return m[1]!;
}

before(async () => {
  certs = createCertWorkshop('sluice-dane-e2e-');
  // A self-signed certificate whose name is not the MX name: DANE-EE authenticates the key alone.
  const ee = certs.selfSigned('ee', 'not-the-mx-name');
  renewed = certs.selfSigned('renewed', 'not-the-mx-name-either');
  const keyHash = (cert: Buffer) =>
    createHash('sha256')
      .update(new X509Certificate(cert).publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex');
  const eeHash = keyHash(ee.cert);
  dnssec = await startDnssecResolver([
    {
      name: 'dane.test',
      kind: 'signed',
      records: [
        'good MX 10 mx-good',
        'mx-good A 127.0.0.1',
        `_25._tcp.mx-good TLSA 3 1 1 ${eeHash}`,
        'wrong MX 10 mx-wrong',
        'mx-wrong A 127.0.0.1',
        // Names the key of a renewed certificate the MX does not serve yet.
        `_25._tcp.mx-wrong TLSA 3 1 1 ${keyHash(renewed.cert)}`,
      ],
    },
  ]);
  // The ingress' sender checks (SPF) use dns.servers: a plain test server that knows the sender.
  plainDns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
  nats = await startNats();
  mx = await startSmtpSink({ tls: ee });
  senders = await startSmtpSink();
  const input = {
    hostname: 'mx.example.org',
    domains: { primary: 'example.org' },
    nats: { servers: [nats.url] },
    ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
    dns: { servers: [plainDns.address], timeout: 2 },
    log: { level: 'warn' },
    routing: {
      forwards: {
        'good@example.org': ['alice@good.dane.test'],
        'wrong@example.org': ['bob@wrong.dane.test'],
      },
    },
    transports: { 'sender.test': { host: '127.0.0.1', port: senders.port } },
    // An hour between attempts: the deferred part waits in the queue for the operator.
    egress: { dnsResolver: dnssec.address, retrySchedule: [3600] },
    bus: { maxDeliver: 500 },
  };
  configFile = join(dir, 'dane.yaml');
  writeFileSync(configFile, JSON.stringify(input)); // JSON is YAML
  const config = parseConfig(input, 'e2e-dane');
  // The production services; the egress' MX and address lookups go to the validating resolver
  // too, and its MX port is the sink's (25 in production).
  const egress = createEgressService({
    mxPort: mx.port,
    dns: createDnsLookup({ ...config.dns, servers: [dnssec.address] }),
  });
  rt = await startRuntime({
    config,
    services: allServices.map((s) => (s.name === 'egress' ? egress : s)),
    logDestination: devNull(),
  });
});

after(async () => {
  await rt?.stop();
  await Promise.all([mx?.stop(), senders?.stop(), dnssec?.stop(), plainDns?.stop()]);
  await nats?.stop();
  certs?.remove();
  rmSync(dir, { recursive: true, force: true });
});

describe('DANE through the pipeline (knot signs, unbound validates)', () => {
  test('an MX with a matching TLSA: delivered over TLS, the timeline says "dane"', async () => {
    const queueId = await send('good@example.org', 'dane good');
    const msg = await mx.waitFor((m) => m.rcptTo.includes('alice@good.dane.test'), 20_000);
    assert.equal(msg.secure, true, 'over STARTTLS');
    const delivery = await waitUntil('the delivery event', async () =>
      (await rt.bus.readTimeline(queueId)).find((e) => e.kind === 'delivery' && e.outcome === 'delivered'),
    );
    assert.equal((delivery as { tls?: string }).tls, 'dane');
  });

  test('an MX whose TLSA matches another key: deferred, listed with the reply, never sent', async () => {
    const queueId = await send('wrong@example.org', 'dane wrong');
    const part = await waitUntil(
      'the part deferred in the queue',
      async () => (await queue(['list'])).reply?.parts?.find((p) => p.queueId === queueId),
      { timeoutMs: 20_000 },
    );
    assert.equal(part.destination, 'wrong.dane.test');
    assert.equal(part.attempts, 1);
    assert.match(part.lastReply ?? '', /^4\d\d 4\.7\.5 .*no TLSA record matches/);
    const deferred = (await rt.bus.readTimeline(queueId)).find(
      (e) => e.kind === 'delivery' && e.outcome === 'deferred',
    ) as { reply: string } | undefined;
    assert.match(deferred?.reply ?? '', /4\.7\.5/);
    assert.equal(mx.messages.filter((m) => m.rcptTo.includes('bob@wrong.dane.test')).length, 0);
  });

  test('the MX gets the certificate its TLSA names; `sluice queue retry` delivers it over DANE at once', async () => {
    const part = (await queue(['list'])).reply?.parts?.find((p) => p.destination === 'wrong.dane.test');
    assert.ok(part, 'still waiting (an hour to its next attempt)');
    const port = mx.port;
    const before = mx.messages.length;
    await mx.stop();
    mx = await startSmtpSink({ port, tls: renewed });
    const retried = await queue(['retry', part.queueId]);
    assert.equal(retried.code, 0, retried.err.join(' ') + JSON.stringify(retried.reply));
    const msg = await mx.waitFor((m) => m.rcptTo.includes('bob@wrong.dane.test'), 20_000);
    assert.equal(msg.secure, true);
    const delivery = await waitUntil('the delivery event', async () =>
      (await rt.bus.readTimeline(part.queueId)).find(
        (e) => e.kind === 'delivery' && e.outcome === 'delivered',
      ),
    );
    assert.equal((delivery as { tls?: string }).tls, 'dane');
    assert.equal(before, 1, 'only the good message reached the MX before the fix');
    await waitUntil('the part to leave the queue', async () =>
      (await queue(['list'])).reply?.parts?.every((p) => p.queueId !== part.queueId),
    );
  });
});
