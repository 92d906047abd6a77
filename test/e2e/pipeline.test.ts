/**
 * End to end, in one process like `sluice run`: a message sent by SMTP to an
 * alias on our MX travels ingress -> filter -> resolver -> rewriter -> egress
 * through a real nats-server (JetStream) and arrives at a real SMTP sink, with
 * one trace covering every stage and a timeline an operator can read back.
 * The filter's DNS questions go to a real DNS server on loopback.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { parseConfig } from '@sluice/config';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  type OtlpReceiver,
  type SmtpSink,
  sendMail,
  smtpConversation,
  startDnsServer,
  startNats,
  startOtlpReceiver,
  startSmtpSink,
  waitUntil,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort, queueIdFromReply } from './helpers.ts';

let nats: NatsTestServer;
let sink: SmtpSink;
let dns: DnsServer;
let otlp: OtlpReceiver;
let rt: Runtime;
let port: number;

before(async () => {
  nats = await startNats();
  sink = await startSmtpSink({ port: 0 });
  dns = await startDnsServer([{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }]);
  otlp = await startOtlpReceiver();
  const config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org', aliases: ['example.com'] },
      routing: {
        aliases: { 'info@example.org': ['alice@example.org', 'bob@example.org'] },
        forwards: { 'alice@example.org': ['alice@forward.test'], 'bob@example.org': ['bob@forward.test'] },
      },
      transports: { 'forward.test': { host: '127.0.0.1', port: sink.port } },
      nats: { servers: [nats.url] },
      ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
      dns: { servers: [dns.address], timeout: 2 },
      telemetry: { otlpEndpoint: otlp.url, serviceName: 'sluice-e2e' },
      log: { level: 'warn' },
    },
    'e2e',
  );
  rt = await startRuntime({ config, services: allServices, logDestination: devNull() });
  port = ingressPort(rt);
});

after(async () => {
  await rt?.stop();
  await Promise.all([sink?.stop(), dns?.stop(), otlp?.stop()]);
  await nats?.stop();
});

function message(subject: string, body: string): Buffer {
  return Buffer.from(
    [
      'From: Sender <sender@sender.test>',
      'To: info@example.com',
      `Subject: ${subject}`,
      `Message-ID: <${randomBytes(8).toString('hex')}@sender.test>`,
      `Date: ${new Date().toUTCString()}`,
      '',
      body,
      '',
    ].join('\r\n'),
  );
}

describe('one message through every stage', () => {
  test('alias on an alias domain is expanded to forwards and delivered with our headers', async () => {
    const raw = message('hello through sluice', 'Hello, world.');
    const reply = await sendMail({ port, from: 'sender@sender.test', to: ['info@example.com'], raw });
    const queueId = queueIdFromReply(reply.response);
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from('hello through sluice')), 20_000);
    assert.equal(got.mailFrom, 'sender@sender.test');
    assert.deepEqual([...got.rcptTo].sort(), ['alice@forward.test', 'bob@forward.test']);
    const text = got.raw.toString('utf8');
    const headerBlock = text.slice(0, text.indexOf('\r\n\r\n'));
    assert.match(
      headerBlock,
      new RegExp(`^Received: from [\\s\\S]*?by mx\\.example\\.org[\\s\\S]*?id ${queueId}`, 'm'),
    );
    assert.match(headerBlock, /^Authentication-Results: mx\.example\.org;[\s\S]*spf=pass/m);
    // The original message is carried unchanged below the prepended headers.
    assert.ok(got.raw.subarray(got.raw.length - raw.length).equals(raw), 'original bytes intact');

    // One trace covers every stage.
    const spans = await otlp.waitFor((all) => {
      const root = all.find((s) => s.attributes['sluice.queue_id'] === queueId);
      if (!root) return undefined;
      const trace = all.filter((s) => s.traceId === root.traceId);
      const names = trace.map((s) => s.name).join('|');
      return ['resolve', 'rewrite', 'deliver', 'filter'].every((n) => names.includes(n)) ? trace : undefined;
    }, 20_000);
    const names = spans.map((s) => s.name);
    for (const subject of ['sluice.v1.mail.resolve', 'sluice.v1.mail.rewrite', 'sluice.v1.mail.deliver']) {
      assert.ok(
        names.some((n) => n.includes(subject)),
        `a span for ${subject} in the message's trace: ${names.join(', ')}`,
      );
    }
    assert.ok(new Set(spans.map((s) => s.traceId)).size === 1);

    // The timeline tells the story.
    let events: Awaited<ReturnType<Runtime['bus']['readTimeline']>> = [];
    await waitUntil(
      () => `the timeline of ${queueId} to complete: ${JSON.stringify(events)}`,
      async () => {
        events = await rt.bus.readTimeline(queueId);
        return events.filter((e) => e.kind === 'delivery').length >= 2;
      },
      { intervalMs: 100 },
    );
    const kinds = new Set(events.map((e) => e.kind));
    for (const k of ['received', 'verdict', 'resolved', 'rewritten', 'delivery'])
      assert.ok(kinds.has(k as never), k);
  });

  test('swaks, a second SMTP client implementation, pipelining its commands, is served the same way', async () => {
    // execFile, not spawnSync: the MX runs in this process and must keep answering.
    const { stdout } = await promisify(execFile)(
      'swaks',
      [
        ...['--server', `127.0.0.1:${port}`, '--helo', 'client.test', '--pipeline'],
        ...['--from', 'sender@sender.test', '--to', 'info@example.org'],
        ...['--header', 'Subject: sent by swaks', '--body', 'hello from swaks'],
      ],
      { timeout: 30_000 },
    );
    const queueId = queueIdFromReply(stdout);
    assert.match(stdout, /250-PIPELINING/);
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from('Subject: sent by swaks')), 20_000);
    assert.deepEqual([...got.rcptTo].sort(), ['alice@forward.test', 'bob@forward.test']);
    assert.match(got.raw.toString(), new RegExp(`id ${queueId}`));
  });

  test('a 10 MB message goes through the object store intact', async () => {
    const big = Buffer.concat([
      message('ten megabytes', ''),
      Buffer.from(randomBytes(7_500_000).toString('base64').replace(/.{76}/g, '$&\r\n')),
      Buffer.from('\r\n'),
    ]);
    assert.ok(big.length > 10_000_000);
    const digest = createHash('sha256').update(big).digest('hex');
    await sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw: big });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from('Subject: ten megabytes')), 60_000);
    const tail = got.raw.subarray(got.raw.length - big.length);
    assert.equal(createHash('sha256').update(tail).digest('hex'), digest);
    assert.deepEqual(got.rcptTo, ['alice@forward.test']);
  });

  test('mail for a domain that is not ours is refused at RCPT (no open relay)', async () => {
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<victim@elsewhere.test>',
      'QUIT',
    ]);
    const rcpt = replies[3]!;
    assert.match(rcpt, /^554 5\.7\.1 /);
  });

  test('an unknown user of our domain is refused at RCPT', async () => {
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<nobody@example.org>',
      'QUIT',
    ]);
    assert.match(replies[3]!, /^550 5\.1\.1 /);
  });
});
