/**
 * The egress against real peers: a real nats-server (JetStream: ledger, body
 * store, deliver stream), real SMTP/LMTP sinks (smtp-server) and a real DNS
 * server on loopback. Each test builds a part as the resolver would and
 * either hands it to deliverPart (one attempt, its disposition checked) or
 * publishes it to the deliver stream for the running egress service.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Bus, EnvelopeDelivery } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { createRedactor } from '@sluice/log';
import {
  dedupIds,
  type Envelope,
  type EnvelopeInput,
  newQueueId,
  parseEnvelope,
  partIdOf,
  type Route,
  type SluiceEvent,
  subjects,
} from '@sluice/proto';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  type DnsServer,
  freePort,
  type NatsTestServer,
  type SmtpSink,
  stageAcks,
  startDnsServer,
  startNats,
  startServiceContext,
  startSmtpSink,
  waitUntil,
} from '@sluice/test-harness';
import { deliverPart, type EgressDeps } from './deliver.ts';
import { createDnsLookup } from './destination.ts';
import { createEgressService } from './egress-service.ts';
import { ledgerKey } from './ledger.ts';

let nats: NatsTestServer;
let dnsServer: DnsServer;
let bus: Bus;
let config: SluiceConfig;
let deps: EgressDeps;
let events: SluiceEvent[];
const toStop: Array<() => Promise<void>> = [];

const BODY = Buffer.from('From: a@sender.test\r\nSubject: egress test\r\n\r\nHello.\r\n');
const RECEIVED = {
  name: 'Received',
  value: 'from client.test by mx.example.org; id TEST',
  addedBy: 'ingress',
};

before(async () => {
  nats = await startNats();
  dnsServer = await startDnsServer([]);
  config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      egress: { retrySchedule: [0.2], connectTimeout: 2, greetingTimeout: 5, socketTimeout: 10 },
      // A fast retry schedule needs a matching lifetime and delivery budget (checked at load).
      bus: { queueLifetime: 86400, maxDeliver: 500_000 },
      dns: { servers: [dnsServer.address], timeout: 2 },
      log: { level: 'warn' },
    },
    'egress-test',
  );
  // The real bus, with its timeline events also kept here so tests can read what was recorded.
  const started = await startServiceContext(config, 'egress-test');
  ({ bus, events } = started);
  deps = { ...started.ctx, dns: createDnsLookup(config.dns) };
});

after(async () => {
  for (const stop of toStop.reverse()) await stop();
  await bus?.close();
  await dnsServer?.stop();
  await nats?.stop();
});

async function sink(opts: Parameters<typeof startSmtpSink>[0] = {}): Promise<SmtpSink> {
  const s = await startSmtpSink(opts);
  toStop.push(() => s.stop());
  return s;
}

const transport = (port: number, lmtp = false): Route => ({
  kind: 'smtp',
  name: 'sink.test',
  host: '127.0.0.1',
  port,
  lmtp,
});

async function makePart(
  route: Route,
  recipients: string[],
  extra: Partial<EnvelopeInput> = {},
): Promise<{ envelope: Envelope; inline?: Uint8Array }> {
  const id = extra.id ?? newQueueId();
  const stored = await bus.storeBody(id, BODY);
  const envelope = parseEnvelope({
    v: 1,
    id,
    partId: partIdOf(id, 'smtp:sink.test', recipients),
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'sender@sender.test' },
    recipients: recipients.map((a) => ({ address: a, original: a })),
    route,
    body: stored.ref,
    prepend: [RECEIVED],
    ...extra,
  });
  return { envelope, inline: stored.inline };
}

function delivery(p: { envelope: Envelope; inline?: Uint8Array }, deliveryCount = 1): EnvelopeDelivery {
  return { envelope: p.envelope, inlineBody: p.inline, deliveryCount, streamSeq: 0, working: () => {} };
}

const ledgerOf = (env: Envelope, address: string) => bus.ledgerGet(ledgerKey(env.id, address));
const eventsOf = (env: Envelope) =>
  events.filter(
    (e): e is Extract<SluiceEvent, { kind: 'delivery' }> => e.kind === 'delivery' && e.partId === env.partId,
  );

/** Parts the egress service acked so far (its stage metric). */
const egressAcks = () => stageAcks(deps.metrics, 'egress');

describe('delivery over SMTP to a transport', () => {
  test('delivered: prepended headers + body, envelope as given, ledger written before the ack', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['alice@forward.test', 'bob@forward.test']);
    const disposition = await deliverPart(delivery(part), deps);
    assert.deepEqual(disposition, { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.mailFrom, 'sender@sender.test');
    assert.deepEqual(msg!.rcptTo, ['alice@forward.test', 'bob@forward.test']);
    assert.equal(msg!.helo, 'mx.example.org');
    assert.equal(msg!.raw.toString(), `Received: ${RECEIVED.value}\r\n${BODY.toString()}`);
    for (const a of ['alice@forward.test', 'bob@forward.test']) {
      const entry = await ledgerOf(part.envelope, a);
      assert.equal(entry?.status, 'delivered');
      assert.match(entry!.reply, /^250 /);
    }
    const ev = eventsOf(part.envelope);
    assert.deepEqual(
      ev.map((e) => [e.recipient, e.outcome, e.attempt, e.tls, e.host]),
      [
        ['alice@forward.test', 'delivered', 1, 'none', `127.0.0.1:${s.port}`],
        ['bob@forward.test', 'delivered', 1, 'none', `127.0.0.1:${s.port}`],
      ],
    );
  });

  test('mixed 250/550: the accepted recipient is delivered, the refused one failed, both in the ledger', async () => {
    const s = await sink({
      failWith: (rcpt) =>
        rcpt.startsWith('bad@') ? { code: 550, message: '5.1.1 No such user here' } : undefined,
    });
    const part = await makePart(transport(s.port), ['good@forward.test', 'bad@forward.test']);
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.deepEqual(msg!.rcptTo, ['good@forward.test']);
    assert.equal((await ledgerOf(part.envelope, 'good@forward.test'))?.status, 'delivered');
    const bad = await ledgerOf(part.envelope, 'bad@forward.test');
    assert.equal(bad?.status, 'failed');
    assert.equal(bad?.reply, '550 5.1.1 No such user here');
  });

  test('with log.addresses = hash, events show no address, not even quoted in a remote reply', async () => {
    const s = await sink({
      failWith: (rcpt) =>
        rcpt.startsWith('gone@') ? { code: 550, message: `5.1.1 <${rcpt}>: user unknown` } : undefined,
    });
    const part = await makePart(transport(s.port), ['gone@forward.test']);
    const redact = createRedactor({ mode: 'hash', key: 'test-key' });
    assert.deepEqual(await deliverPart(delivery(part), { ...deps, redact }), { kind: 'ack' });
    const [ev] = eventsOf(part.envelope);
    const hashed = redact.address('gone@forward.test');
    assert.equal(ev?.recipient, hashed);
    assert.equal(ev?.reply, `550 5.1.1 <${hashed}>: user unknown`);
    assert.ok(!JSON.stringify(ev).includes('gone@forward.test'));
  });

  test('the null sender goes out as MAIL FROM:<> (RFC 5321 §4.5.5)', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['x@forward.test'], { mailFrom: { address: '' } });
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.mailFrom, '');
  });

  test('a redelivered part goes only to the recipients not yet final in the ledger', async () => {
    let greylist = true;
    const s = await sink({
      failWith: (rcpt) =>
        rcpt === 'later@forward.test' && greylist
          ? { code: 450, message: '4.7.1 Try again later' }
          : undefined,
    });
    const part = await makePart(transport(s.port), ['now@forward.test', 'later@forward.test']);
    const first = await deliverPart(delivery(part, 1), deps);
    assert.equal(first.kind, 'retry');
    assert.equal(first.kind === 'retry' ? first.delayMs : 0, 200);
    assert.equal(await ledgerOf(part.envelope, 'later@forward.test'), null, 'deferred is not final');
    const deferred = eventsOf(part.envelope).find((e) => e.recipient === 'later@forward.test');
    assert.equal(deferred?.outcome, 'deferred');
    assert.ok(deferred?.nextAttemptAt);

    greylist = false;
    assert.deepEqual(await deliverPart(delivery(part, 2), deps), { kind: 'ack' });
    // Once more, as after a crash before the ack: nobody gets it again.
    assert.deepEqual(await deliverPart(delivery(part, 3), deps), { kind: 'ack' });
    const msgs = await s.waitFor(2);
    assert.deepEqual(
      s.messages.map((m) => m.rcptTo),
      [['now@forward.test'], ['later@forward.test']],
    );
    assert.equal(msgs.length, 2);
  });

  test('an address with CR/LF or angle brackets is failed with a clear reason and never sent', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['ok@forward.test']);
    // The envelope schema refuses such addresses; this is the last line of defence behind it.
    const evil = { ...part.envelope, recipients: [...part.envelope.recipients] };
    evil.recipients.push({
      address: 'x@forward.test>\r\nRCPT TO:<victim@elsewhere.test',
      original: 'x',
      status: 'pending',
    });
    assert.deepEqual(await deliverPart(delivery({ envelope: evil, inline: part.inline }), deps), {
      kind: 'ack',
    });
    const [msg] = await s.waitFor(1);
    assert.deepEqual(msg!.rcptTo, ['ok@forward.test']);
    const entry = await ledgerOf(part.envelope, evil.recipients[1]!.address);
    assert.equal(entry?.status, 'failed');
    assert.match(
      entry!.reply,
      /^553 5\.1\.3 \(sluice\) recipient address can not be sent: it contains CR, LF, NUL, angle brackets or edge spaces$/,
    );
  });

  test('LMTP (RFC 2033): LHLO and a reply per recipient', async () => {
    const s = await sink({
      lmtp: true,
      failWith: (rcpt) =>
        rcpt.startsWith('over@') ? { code: 552, message: '5.2.2 Mailbox full' } : undefined,
    });
    const part = await makePart(transport(s.port, true), ['a@mail.test', 'over@mail.test', 'b@mail.test']);
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.deepEqual(msg!.rcptTo, ['a@mail.test', 'b@mail.test']);
    assert.equal((await ledgerOf(part.envelope, 'a@mail.test'))?.status, 'delivered');
    assert.equal((await ledgerOf(part.envelope, 'b@mail.test'))?.status, 'delivered');
    assert.equal((await ledgerOf(part.envelope, 'over@mail.test'))?.status, 'failed');
  });

  test('a message past bus.queueLifetime fails its deferred recipients as expired, and is acked', async () => {
    const downPort = await freePort();
    const sixDaysAgo = new Date(Date.now() - 6 * 86400_000).toISOString();
    const part = await makePart(transport(downPort), ['old@forward.test'], { receivedAt: sixDaysAgo });
    assert.deepEqual(await deliverPart(delivery(part, 30), deps), { kind: 'ack' });
    const entry = await ledgerOf(part.envelope, 'old@forward.test');
    assert.equal(entry?.status, 'failed');
    assert.match(
      entry!.reply,
      /^554 5\.4\.7 \(sluice\) delivery time expired after 1 day; last reply: 451 4\.4\.1 /,
    );
  });
});

describe('large bodies streamed from the object store', () => {
  async function* chunksOf(body: Buffer, size: number): AsyncGenerator<Uint8Array> {
    for (let pos = 0; pos < body.length; pos += size) yield body.subarray(pos, pos + size);
  }

  async function objectPart(route: Route, recipients: string[], body: Buffer, sha256?: string) {
    const id = newQueueId();
    const stored = await bus.storeBodyStream(id, chunksOf(body, 64 * 1024));
    assert.equal(stored.ref.kind, 'object');
    const envelope = parseEnvelope({
      v: 1,
      id,
      partId: `${id}-1`,
      receivedAt: new Date().toISOString(),
      source: 'mx',
      receivedBy: 'mx.example.org',
      client: { ip: '192.0.2.1', helo: 'client.test' },
      mailFrom: { address: 'sender@sender.test' },
      recipients: recipients.map((a) => ({ address: a, original: a })),
      route,
      body: sha256 ? { ...stored.ref, sha256 } : stored.ref,
      prepend: [RECEIVED],
    });
    return { envelope };
  }

  test('150 recipients: two transactions, each streaming the 3 MB body; dot-stuffing and 8BITMIME intact', async () => {
    const s = await sink();
    const lines: string[] = ['From: a@sender.test', 'Subject: große Nachricht', ''];
    for (let i = 0, length = 0; length < 3 * 1024 * 1024; i++) {
      const line =
        i % 100 === 0 ? '.a line that starts with a dot' : i % 7 === 0 ? '..' : `line ${i} ${'x'.repeat(60)}`;
      lines.push(line);
      length += line.length + 2;
    }
    const body = Buffer.from(`${lines.join('\r\n')}\r\n`, 'utf8');
    const to = Array.from({ length: 150 }, (_, i) => `r${i}@forward.test`);
    const part = await objectPart(transport(s.port), to, body);
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const msgs = await s.waitFor(2);
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from(`Received: ${RECEIVED.value}\r\n`), body]))
      .digest('hex');
    assert.deepEqual(
      msgs.map((m) => [m.rcptTo.length, m.sha256, m.mailParams['BODY']]),
      [
        [100, expected, '8BITMIME'],
        [50, expected, '8BITMIME'],
      ],
    );
  });

  test('a body that does not match its envelope: the transaction is cut before the final dot, nothing delivered, deferred', async () => {
    const s = await sink();
    const body = Buffer.from(`Subject: tampered\r\n\r\n${'t'.repeat(78)}\r\n`.repeat(5000));
    const part = await objectPart(transport(s.port), ['victim@forward.test'], body, '0'.repeat(64));
    const disposition = await deliverPart(delivery(part), deps);
    assert.equal(disposition.kind, 'retry');
    const [ev] = eventsOf(part.envelope);
    assert.equal(ev?.outcome, 'deferred');
    assert.match(ev?.reply ?? '', /^451 4\.3\.0 \(sluice\) message body could not be read: .*sha256/);
    assert.equal(s.messages.length, 0, 'the remote never got a complete message');
    assert.equal(await ledgerOf(part.envelope, 'victim@forward.test'), null);
  });
});

describe('STARTTLS', () => {
  let certDir: string;
  let tls: { key: Buffer; cert: Buffer };

  before(() => {
    certDir = mkdtempSync(join(tmpdir(), 'sluice-egress-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=sink.test',
        '-keyout',
        join(certDir, 'key.pem'),
        '-out',
        join(certDir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    tls = { key: readFileSync(join(certDir, 'key.pem')), cert: readFileSync(join(certDir, 'cert.pem')) };
  });
  after(() => rmSync(certDir, { recursive: true, force: true }));

  test('opportunistic STARTTLS with an unverifiable certificate still beats cleartext (RFC 7435)', async () => {
    const s = await sink({ tls });
    const part = await makePart(transport(s.port), ['tls@forward.test']);
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.secure, true);
    assert.equal(eventsOf(part.envelope)[0]?.tls, 'tls');
  });

  test('a transport with clientCert presents it over STARTTLS; without it the server refuses the session', async () => {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=sluice-client'].concat([
        '-keyout',
        join(certDir, 'client-key.pem'),
        '-out',
        join(certDir, 'client-cert.pem'),
      ]),
      { stdio: 'ignore' },
    );
    const clientCa = readFileSync(join(certDir, 'client-cert.pem'));
    const s = await sink({ tls: { ...tls, clientCa } });
    const withCert = {
      ...deps,
      config: {
        ...config,
        transports: {
          'sink.test': {
            host: '127.0.0.1',
            port: s.port,
            lmtp: false,
            clientCert: join(certDir, 'client-cert.pem'),
            clientKey: join(certDir, 'client-key.pem'),
          },
        },
      },
    };
    const part = await makePart(transport(s.port), ['mtls@forward.test']);
    assert.deepEqual(await deliverPart(delivery(part), withCert), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.secure, true);
    // The same server, no client certificate: it refuses the session (TLS 1.3 alert
    // "certificate required"), the part is deferred and nothing more arrives.
    const plain = await makePart(transport(s.port), ['plain@forward.test']);
    const d = await deliverPart(delivery(plain), deps);
    assert.equal(d.kind, 'retry');
    assert.match(d.kind === 'retry' ? (d.reason ?? '') : '', /certificate required/);
    assert.equal(s.messages.length, 1);
    // A transport with a certificate never falls back to cleartext.
    const noTls = await sink();
    const strict = {
      ...withCert,
      config: {
        ...withCert.config,
        transports: { 'sink.test': { ...withCert.config.transports['sink.test'], port: noTls.port } },
      },
    };
    const refused = await makePart(transport(noTls.port), ['never@forward.test']);
    assert.equal((await deliverPart(delivery(refused), strict)).kind, 'retry');
    assert.equal(noTls.messages.length, 0);
  });

  test('egress.requireTls: a server without STARTTLS gets nothing; the part is deferred', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['secret@forward.test']);
    const strict = { ...deps, config: { ...config, egress: { ...config.egress, requireTls: true } } };
    const d = await deliverPart(delivery(part), strict);
    assert.equal(d.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.match(
      eventsOf(part.envelope)[0]!.reply,
      /^451 4\.7\.10 \(sluice\) TLS required but not available/,
    );
  });
});

describe('MX routes (RFC 5321 §5.1) through a real DNS server', () => {
  test('the first MX refuses connections: the next one gets the message', async () => {
    const s = await sink();
    dnsServer.set([
      { name: 'mx.test', type: 'MX', data: { preference: 10, exchange: 'down.mx.test' } },
      { name: 'mx.test', type: 'MX', data: { preference: 20, exchange: 'up.mx.test' } },
      // Nothing listens on 127.0.0.2: connection refused.
      { name: 'down.mx.test', type: 'A', data: '127.0.0.2' },
      { name: 'up.mx.test', type: 'A', data: '127.0.0.1' },
    ]);
    const part = await makePart({ kind: 'mx', domain: 'mx.test' }, ['someone@mx.test']);
    assert.deepEqual(await deliverPart(delivery(part), { ...deps, mxPort: s.port }), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.deepEqual(msg!.rcptTo, ['someone@mx.test']);
    assert.equal(eventsOf(part.envelope)[0]?.host, `up.mx.test[127.0.0.1]:${s.port}`);
    assert.equal((await ledgerOf(part.envelope, 'someone@mx.test'))?.status, 'delivered');
  });

  test('a null MX fails the recipients for good without connecting (RFC 7505)', async () => {
    dnsServer.set([{ name: 'nullmx.test', type: 'MX', data: { preference: 0, exchange: '.' } }]);
    const part = await makePart({ kind: 'mx', domain: 'nullmx.test' }, ['x@nullmx.test']);
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const entry = await ledgerOf(part.envelope, 'x@nullmx.test');
    assert.equal(entry?.status, 'failed');
    assert.match(entry!.reply, /^556 5\.1\.10 /);
  });
});

describe('the egress service on the deliver stream', () => {
  let running: RunningService;

  before(async () => {
    const ctx: ServiceContext = { ...deps };
    running = await createEgressService({ dns: deps.dns }).start(ctx);
    toStop.push(() => running.stop());
  });

  test('a destination that is down: deferred with the scheduled delay, delivered once it is up', async () => {
    const port = await freePort();
    const part = await makePart(transport(port), ['patient@forward.test']);
    await bus.publishEnvelope(subjects.deliver, part.envelope, part.inline, {
      msgId: dedupIds.deliver(part.envelope.partId!),
    });
    const deferred = await waitUntil('a deferred attempt', () =>
      eventsOf(part.envelope).find((e) => e.outcome === 'deferred'),
    );
    assert.match(
      deferred.reply,
      /^451 4\.4\.1 \(sluice\) could not open an SMTP session: 127\.0\.0\.1:\d+: /,
    );
    assert.equal(deferred.attempt, 1);
    // The retry schedule ([0.2] s) decides when the next attempt is due. The event's `at` is
    // taken a moment after the due time was computed, so allow a few ms of skew under load.
    const due = Date.parse(deferred.nextAttemptAt!) - Date.parse(deferred.at);
    assert.ok(due >= 190 && due < 300, `next attempt ${due} ms after this one`);

    const s = await sink({ port });
    const [msg] = await s.waitFor(1, 15_000);
    assert.deepEqual(msg!.rcptTo, ['patient@forward.test']);
    const entry = await waitUntil('the ledger entry', () => ledgerOf(part.envelope, 'patient@forward.test'));
    assert.equal(entry.status, 'delivered');
    const delivered = eventsOf(part.envelope).find((e) => e.outcome === 'delivered');
    assert.ok(delivered && delivered.attempt >= 2);
  });

  test('a part published twice (a redelivery) is delivered once', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['once@forward.test']);
    const acksBefore = await egressAcks();
    await bus.publishEnvelope(subjects.deliver, part.envelope, part.inline, {
      msgId: dedupIds.deliver(part.envelope.partId!),
    });
    await s.waitFor(1);
    await waitUntil('the ledger entry', () => ledgerOf(part.envelope, 'once@forward.test'));
    // A second copy under another message id gets past JetStream's dedup, as a redelivery would.
    await bus.publishEnvelope(subjects.deliver, part.envelope, part.inline, {
      msgId: `${part.envelope.partId}:again`,
    });
    await waitUntil('the second copy to be acked', async () => (await egressAcks()) >= acksBefore + 2);
    assert.equal(s.messages.length, 1);
  });
});

describe('DSN parameters passed on to the next hop (RFC 3461 §5.2.1)', () => {
  const relayed = async () =>
    (await deps.metrics.dsnsQueued.get()).values.find((v) => v.labels.action === 'relayed')?.value ?? 0;

  test('a DSN-capable hop gets RET/ENVID on MAIL and each recipient its own NOTIFY/ORCPT; no "relayed" DSN from us', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['a@forward.test', 'b@forward.test', 'c@forward.test'], {
      mailFrom: { address: 'sender@sender.test', ret: 'HDRS', envid: 'QQ 1+2=3' },
      recipients: [
        {
          address: 'a@forward.test',
          original: 'a@forward.test',
          notify: ['SUCCESS', 'FAILURE'],
          orcpt: 'rfc822;alias@example.org',
        },
        { address: 'b@forward.test', original: 'b@example.org', notify: ['NEVER'] },
        // A forward's target: ORCPT names the address as received (§4.2), NOTIFY absent stays absent.
        { address: 'c@forward.test', original: 'c@example.org' },
      ],
    });
    const before = await relayed();
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.mailParams.RET, 'HDRS');
    assert.equal(
      msg!.mailParams.ENVID,
      'QQ 1+2=3',
      'ENVID is xtext-encoded on the wire and decoded by the server',
    );
    assert.deepEqual(msg!.rcptDsn, [
      { address: 'a@forward.test', notify: ['SUCCESS', 'FAILURE'], orcpt: 'rfc822;alias@example.org' },
      { address: 'b@forward.test', notify: ['NEVER'], orcpt: 'rfc822;b@example.org' },
      { address: 'c@forward.test', notify: undefined, orcpt: 'rfc822;c@example.org' },
    ]);
    assert.equal(await relayed(), before, 'the next hop reports success itself');
  });

  test('a hop without DSN gets no parameters, and NOTIFY=SUCCESS gets our "relayed" DSN (RFC 3461 §5.2.2)', async () => {
    const s = await sink({ hideDsn: true });
    const part = await makePart(transport(s.port), ['a@forward.test'], {
      mailFrom: { address: 'sender@sender.test', ret: 'FULL', envid: 'E1' },
      recipients: [{ address: 'a@forward.test', original: 'a@forward.test', notify: ['SUCCESS'] }],
    });
    const before = await relayed();
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.mailParams.RET, undefined);
    assert.equal(msg!.mailParams.ENVID, undefined);
    assert.deepEqual(msg!.rcptDsn, [{ address: 'a@forward.test', notify: undefined, orcpt: undefined }]);
    assert.equal(await relayed(), before + 1);
  });
});

describe('REQUIRETLS and LMTP (RFC 8689, RFC 2033)', () => {
  test('final delivery over LMTP is not relaying: a REQUIRETLS message is delivered to the mailbox store', async () => {
    const s = await sink({ lmtp: true });
    const part = await makePart(transport(s.port, true), ['box@example.org'], {
      mailFrom: { address: 'sender@sender.test', requireTls: true },
    });
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    const [msg] = await s.waitFor(1);
    assert.equal(msg!.mailParams.REQUIRETLS, undefined);
  });

  test('an SMTP transport without TLS gets no REQUIRETLS message: failed 5.7.10, nothing sent', async () => {
    const s = await sink();
    const part = await makePart(transport(s.port), ['far@forward.test'], {
      mailFrom: { address: 'sender@sender.test', requireTls: true },
    });
    assert.deepEqual(await deliverPart(delivery(part), deps), { kind: 'ack' });
    assert.equal(s.messages.length, 0);
    const entry = await ledgerOf(part.envelope, 'far@forward.test');
    assert.equal(entry?.status, 'failed');
    assert.match(entry!.reply, /^550 5\.7\.10 /);
  });
});
