/**
 * The ingress against real peers: a real nats-server (JetStream), the real
 * filter service (SPF/DKIM/DMARC against a real DNS server on loopback), real
 * SMTP clients (nodemailer and raw sockets). The RCPT-time lookup is answered
 * here from a small table over the same bus subject the resolver serves, so
 * each lookup outcome (ok, unknown, tempfail, no answer) can be produced on
 * demand; the real resolver is exercised in the end-to-end tests
 * (test/e2e/pipeline.test.ts).
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { Objm } from '@nats-io/obj';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { Bus, RpcServer } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { filterService } from '@sluice/filter';
import {
  decodeEnvelope,
  type Envelope,
  objectStores,
  queueGroups,
  type SluiceEvent,
  streams,
  subjects,
} from '@sluice/proto';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  sendMail,
  smtpConversation,
  startDnsServer,
  startNats,
  startServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { ingressService } from './ingress-service.ts';

const exporter = new InMemorySpanExporter();
const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
const contextManager = new AsyncLocalStorageContextManager().enable();

let nats: NatsTestServer;
let dns: DnsServer;
let bus: Bus;
let jsm: JetStreamManager;
let config: SluiceConfig;
let ctx: ServiceContext;
let filter: RunningService;
let ingress: RunningService;
let lookup: RpcServer;
let port: number;
let events: SluiceEvent[];
/** Lookups of slow@ wait for this gate: the test opens it once it has seen the 451. */
let openSlowGate: () => void = () => {};
let slowGate = Promise.resolve();

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const LOOKUP_TABLE: Record<string, 'ok' | 'unknown' | 'tempfail'> = {
  'alice@example.org': 'ok',
  'bob@example.org': 'ok',
  'carol@example.org': 'ok',
  'dave@example.org': 'ok',
  'alice@example.com': 'ok',
  'postmaster@example.org': 'ok',
  'broken@example.org': 'tempfail',
};

before(async () => {
  context.setGlobalContextManager(contextManager);
  trace.setGlobalTracerProvider(provider);
  nats = await startNats();
  dns = await startDnsServer([
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: '_dmarc.sender.test', type: 'TXT', data: 'v=DMARC1; p=none' },
  ]);
  config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org', aliases: ['example.com'] },
      nats: { servers: [nats.url] },
      // Off: these tests play several filter replicas on one bus, where a real replica is a process
      // of its own; in one process the ingress would always ask the free local one (0046).
      bus: { inlineMaxBytes: 16 * 1024, publishTimeout: 2, inProcessHandover: false },
      ingress: {
        listen: [{ host: '127.0.0.1', port: 0 }],
        maxMessageBytes: 64 * 1024,
        maxRecipients: 3,
        filterTimeout: 1,
        lookupTimeout: 0.5,
      },
      dns: { servers: [dns.address], timeout: 1 },
      log: { level: 'warn' },
    },
    'ingress-test',
  );
  // The real bus, with the timeline events also kept here for the assertions.
  ({ bus, ctx, events } = await startServiceContext(config, 'ingress-test', {
    logDestination: devNull() as never,
  }));
  jsm = await jetstreamManager(bus.nc);
  lookup = bus.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 8 }, async (req) => {
    const { address } = JSON.parse(decoder.decode(req.data)) as { address: string };
    if (address === 'slow@example.org') await slowGate;
    const result = LOOKUP_TABLE[address.toLowerCase()] ?? 'unknown';
    return encoder.encode(JSON.stringify({ v: 1, result, targets: [], trail: [] }));
  });
  filter = await filterService.start(ctx);
  ingress = await ingressService.start(ctx);
  const info = ingress.info ? (ingress.info() as { ports: number[] }) : { ports: [] };
  port = info.ports[0]!;
});

after(async () => {
  openSlowGate();
  await ingress?.stop();
  await filter?.stop();
  await lookup?.stop();
  await bus?.close();
  await dns?.stop();
  await nats?.stop();
  await provider.shutdown();
  trace.disable();
  context.disable();
});

function devNull(): Writable {
  return new Writable({ write: (_c, _e, cb) => cb() });
}

/** sluice_messages_rejected_total{stage="ingress",reason} as the ingress counted it. */
async function rejectedCount(reason: string): Promise<number> {
  const { values } = await ctx.metrics.rejected.get();
  return values.find((v) => v.labels.stage === 'ingress' && v.labels.reason === reason)?.value ?? 0;
}

async function resolveStreamCount(): Promise<number> {
  return (await jsm.streams.info(streams.resolve.name)).state.messages;
}

async function lastQueued(): Promise<Envelope> {
  const m = await jsm.streams.getMessage(streams.resolve.name, { last_by_subj: subjects.resolve });
  if (!m) throw new Error('nothing in the resolve stream');
  return decodeEnvelope(m.data).envelope;
}

async function bodyObjectCount(): Promise<number> {
  const store = await new Objm(bus.js).open(objectStores.bodies);
  return (await store.list()).filter((o) => !o.deleted).length;
}

/** About `bytes` of body in 78-octet lines (RFC 5322 §2.1.1: the MX refuses lines over 998). */
function lines(ch: string, bytes: number): string {
  return `${ch.repeat(76)}\r\n`.repeat(Math.ceil(bytes / 78));
}

function message(subject: string, extra = ''): Buffer {
  return Buffer.from(
    [
      'From: Sender <sender@sender.test>',
      'To: alice@example.org',
      `Subject: ${subject}`,
      `Message-ID: <${subject.replace(/\W/g, '-')}@sender.test>`,
      'Date: Tue, 5 May 2026 10:00:00 +0000',
      '',
      `Body of ${subject}.${extra}`,
      '',
    ].join('\r\n'),
  );
}

/** EHLO, MAIL FROM and one RCPT: the RCPT reply is replies[3]. */
const rcpt = (to: string) =>
  smtpConversation(port, ['EHLO client.test', 'MAIL FROM:<sender@sender.test>', `RCPT TO:<${to}>`, 'QUIT']);

describe('EHLO', () => {
  test('advertises SIZE, enhanced status codes and the MX extensions; no AUTH, no STARTTLS', async () => {
    const [greeting, ehlo] = await smtpConversation(port, ['EHLO client.test', 'QUIT']);
    assert.match(greeting!, /^220 mx\.example\.org ESMTP Sluice$/);
    for (const ext of ['PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'DSN', 'SIZE 65536']) {
      assert.match(ehlo!, new RegExp(`^250[ -]${ext}$`, 'm'), ext);
    }
    assert.doesNotMatch(ehlo!, /AUTH|STARTTLS/);
  });
});

describe('RCPT TO', () => {
  test('a domain that is not ours: 554 5.7.1 relay access denied', async () => {
    assert.match((await rcpt('victim@elsewhere.test'))[3]!, /^554 5\.7\.1 Relay access denied$/);
  });

  test('relay tricks on our domain are refused too: %, !, address literal, source route', async () => {
    for (const to of [
      'victim%elsewhere.test@example.org',
      'elsewhere.test!victim@example.org',
      'victim@[127.0.0.1]',
      '@example.org:victim@elsewhere.test',
    ]) {
      assert.match((await rcpt(to))[3]!, /^554 5\.7\.1 /, to);
    }
  });

  test('an unknown user of our domain: 550 5.1.1', async () => {
    assert.match((await rcpt('nobody@example.org'))[3]!, /^550 5\.1\.1 /);
  });

  test('known users of the primary and alias domains, and the bare postmaster, are accepted', async () => {
    for (const to of ['alice@example.org', 'ALICE@Example.COM', 'Postmaster']) {
      assert.match((await rcpt(to))[3]!, /^250 2\.1\.5 /, to);
    }
  });

  test('a lookup that does not answer in time: 451 4.3.0, never accepted', async () => {
    slowGate = new Promise((r) => {
      openSlowGate = r;
    });
    const started = Date.now();
    const replies = await rcpt('slow@example.org');
    openSlowGate();
    assert.match(replies[3]!, /^451 4\.3\.0 /);
    assert.ok(Date.now() - started >= 450, 'waited for the lookup timeout');
  });

  test('a lookup that answers tempfail: 451 4.3.0', async () => {
    assert.match((await rcpt('broken@example.org'))[3]!, /^451 4\.3\.0 /);
  });

  test('more than maxRecipients: 452 4.5.3 for the extra ones (RFC 5321 §4.5.3.1.8)', async () => {
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<alice@example.org>',
      'RCPT TO:<bob@example.org>',
      'RCPT TO:<carol@example.org>',
      'RCPT TO:<dave@example.org>',
      'QUIT',
    ]);
    assert.deepEqual(
      replies.slice(3, 7).map((r) => r.slice(0, 9)),
      ['250 2.1.5', '250 2.1.5', '250 2.1.5', '452 4.5.3'],
    );
  });
});

describe('size', () => {
  test('a declared SIZE over the limit is refused at MAIL FROM: 552 5.3.4', async () => {
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test> SIZE=70000',
    ]);
    assert.match(replies[2]!, /^552 5\.3\.4 /);
  });

  test('an actual transfer over the limit: 552 5.3.4 after the data, nothing queued', async () => {
    const before = await resolveStreamCount();
    const big = message('too big', lines('x', 70 * 1024));
    await assert.rejects(
      sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw: big }),
      (err: { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 552);
        assert.match(err.response ?? '', /^552 5\.3\.4 /);
        return true;
      },
    );
    assert.equal(await resolveStreamCount(), before);
  });
});

describe('SMTP smuggling', () => {
  test('a bare LF in the data is refused (550 5.5.2), the client cut off, nothing queued', async () => {
    const before = await resolveStreamCount();
    const smuggled =
      'Subject: innocent\r\n\r\nhello\n.\nMAIL FROM:<ceo@example.org>\nRCPT TO:<alice@example.org>\nDATA\n' +
      'Subject: forged\r\n\r\nsmuggled\r\n.\r\n';
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<alice@example.org>',
      'DATA',
      { raw: smuggled },
      'MAIL FROM:<sender@sender.test>',
    ]);
    assert.match(replies[4]!, /^354 /);
    assert.equal(replies[5], '550 5.5.2 Error: bare <LF> received');
    assert.equal(
      replies.length,
      6,
      'the connection is closed after the refusal (Postfix smtpd_forbid_bare_newline)',
    );
    assert.equal(await resolveStreamCount(), before);
  });

  test('a bare CR is refused the same way', async () => {
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<alice@example.org>',
      'DATA',
      { raw: 'Subject: cr\r\n\r\nhello\r.\rMAIL FROM:<x@y>\r\n.\r\n' },
    ]);
    assert.equal(replies[5], '550 5.5.2 Error: bare <CR> received');
  });
});

describe('accepted mail', () => {
  test('is in SLUICE_RESOLVE with our Received on top, then Authentication-Results and X-Spam-*; 250 names the queue id', async () => {
    exporter.reset();
    const raw = message('accepted');
    const reply = await sendMail({
      port,
      from: 'sender@sender.test',
      to: ['alice@example.org'],
      raw,
      size: raw.length,
    });
    const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{26})$/.exec(reply.response);
    assert.ok(m, reply.response);
    const queueId = m[1]!;

    const env = await lastQueued();
    assert.equal(env.id, queueId);
    assert.equal(env.source, 'mx');
    assert.equal(env.client.ip, '127.0.0.1');
    assert.equal(env.client.helo, 'client.test');
    assert.equal(env.mailFrom.address, 'sender@sender.test');
    assert.equal(env.mailFrom.size, raw.length);
    assert.deepEqual(
      env.recipients.map((r) => r.address),
      ['alice@example.org'],
    );
    assert.equal(env.body.kind, 'inline');
    assert.equal(env.body.size, raw.length);
    assert.equal(env.verdict?.action, 'accept');
    assert.equal(env.auth?.spf, 'pass');

    assert.deepEqual(
      env.prepend.map((h) => [h.name, h.addedBy]),
      [
        ['Received', 'ingress'],
        ['Authentication-Results', 'filter'],
        ['X-Spam-Score', 'filter'],
        ['X-Spam-Status', 'filter'],
      ],
    );
    const received = env.prepend[0]!.value;
    assert.match(
      received,
      /^from client\.test \(\[127\.0\.0\.1\]\)\r\n\tby mx\.example\.org \(Sluice\) with ESMTP/,
    );
    assert.match(received, new RegExp(`id ${queueId}\\r\\n\\tfor <alice@example\\.org>; `));
    assert.match(env.prepend[1]!.value, /^mx\.example\.org;\r\n\t[\s\S]*spf=pass/);

    // One trace: the ingress span is the root; the filter's span and the publish are in it.
    assert.ok(env.trace?.traceparent);
    const traceId = env.trace.traceparent.split('-')[1]!;
    const spans = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
    const root = spans.find((s) => s.name === 'ingress receive');
    assert.ok(root, spans.map((s) => s.name).join(', '));
    assert.equal(root.attributes['sluice.queue_id'], queueId);
    assert.equal(root.attributes['client.address'], '127.0.0.1');
    assert.equal(root.attributes['sluice.message.size'], raw.length);
    assert.ok(spans.some((s) => s.name === 'filter verdict'));
    assert.ok(spans.some((s) => s.name === `send ${subjects.resolve}`));

    // The timeline, in time order as its readers show it: received, then the filter's verdict
    // ('received' is recorded once the verdict is in, stamped with the end of DATA).
    const mine = events
      .filter((e) => e.queueId === queueId)
      .sort((a, b) => a.at.localeCompare(b.at))
      .map((e) => e.kind);
    assert.deepEqual(mine, ['received', 'verdict']);
    const ev = events.find((e) => e.queueId === queueId && e.kind === 'received');
    assert.ok(ev && ev.kind === 'received');
    assert.equal(ev.messageId, '<accepted@sender.test>');
    assert.equal(ev.size, raw.length);
  });

  test('a client resending after a lost 250 gets 250 again and the message is queued once', async () => {
    const raw = message('resent');
    const before = await resolveStreamCount();
    const first = await sendMail({ port, from: 'sender@sender.test', to: ['bob@example.org'], raw });
    const second = await sendMail({ port, from: 'sender@sender.test', to: ['bob@example.org'], raw });
    assert.match(first.response, /^250 /);
    assert.match(second.response, /^250 /);
    assert.equal(await resolveStreamCount(), before + 1);

    // The resend has a timeline of its own, ending in "duplicate of <the first queue id>".
    const firstId = /queued as (\S+)/.exec(first.response)![1]!;
    const secondId = /queued as (\S+)/.exec(second.response)![1]!;
    assert.notEqual(firstId, secondId);
    const timeline = await waitUntil('the duplicate event in the timeline', async () => {
      const t = await bus.readTimeline(secondId);
      return t.some((e) => e.kind === 'duplicate') ? t : undefined;
    });
    assert.deepEqual(
      timeline.map((e) => e.kind),
      ['received', 'verdict', 'duplicate'],
    );
    const dup = timeline.at(-1)!;
    assert.ok(dup.kind === 'duplicate');
    assert.equal(dup.duplicateOf, firstId);
    assert.match(dup.msgId, /^mx:[0-9a-f]{64}$/);

    // A third resend still names the first copy, not the second.
    const third = await sendMail({ port, from: 'sender@sender.test', to: ['bob@example.org'], raw });
    const thirdId = /queued as (\S+)/.exec(third.response)![1]!;
    const dup3 = await waitUntil("the third resend's duplicate event", async () =>
      (await bus.readTimeline(thirdId)).find((e) => e.kind === 'duplicate'),
    );
    assert.ok(dup3.kind === 'duplicate');
    assert.equal(dup3.duplicateOf, firstId);
    assert.equal(await resolveStreamCount(), before + 1);
  });

  test('a body above the inline limit travels through the object store', async () => {
    const raw = message('large', lines('y', 20 * 1024));
    const reply = await sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw });
    assert.match(reply.response, /^250 /);
    const env = await lastQueued();
    assert.equal(env.body.kind, 'object');
    assert.equal(env.body.size, raw.length);
  });
});

describe('bodies streamed, memory bounded', () => {
  async function bodyChunkMessages(): Promise<number> {
    return (await jsm.streams.info(`OBJ_${objectStores.bodies}`)).state.messages;
  }

  test('a bare LF past the inline limit: 550 5.5.2 and nothing left in the object store', async () => {
    const objects = await bodyChunkMessages();
    const before = await resolveStreamCount();
    const clean = `${'z'.repeat(998)}\r\n`.repeat(40); // 40 KB: well past the 16 KiB inline limit
    const replies = await smtpConversation(port, [
      'EHLO client.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<alice@example.org>',
      'DATA',
      { raw: `Subject: late smuggling\r\n\r\n${clean}hello\n.\nMAIL FROM:<x@y>\r\n.\r\n` },
    ]);
    assert.equal(replies[5], '550 5.5.2 Error: bare <LF> received');
    assert.equal(await resolveStreamCount(), before);
    assert.equal(await bodyChunkMessages(), objects, 'the chunks already streamed were purged');
  });

  test('over ingress.maxBodyBytesInFlight: 452 4.3.1 (at MAIL FROM SIZE= and after DATA); the budget is released after success and failure', async () => {
    // The smallest budget the ingress accepts with a 16 KiB inline limit: 16 + 2 x 64 + 256 KiB.
    const budgetBytes = (16 + 128 + 256) * 1024;
    const small = await ingressService.start({
      ...ctx,
      // 30 sessions from one address: over the per-IP limit (20) unless trusted.
      config: {
        ...config,
        ingress: { ...config.ingress, maxBodyBytesInFlight: budgetBytes, trustedNetworks: ['127.0.0.1'] },
      },
    });
    try {
      const smallPort = (small.info!() as { ports: number[] }).ports[0]!;
      const inFlight = () => (small.info!() as { bodyBytesInFlight: number }).bodyBytesInFlight;
      let release: () => void = () => {};
      const gate = new Promise<void>((r) => {
        release = r;
      });
      const part = (i: number) => `Subject: held ${i}\r\n\r\n${`${'h'.repeat(98)}\r\n`.repeat(130)}`; // ~13 KB, under the inline limit
      // 30 transactions hold ~391 KB of the 400 KiB while their clients pause mid-DATA.
      const holders = Array.from({ length: 30 }, (_, i) =>
        smtpConversation(smallPort, [
          'EHLO client.test',
          'MAIL FROM:<sender@sender.test>',
          'RCPT TO:<alice@example.org>',
          'DATA',
          { raw: part(i), reply: false },
          { action: () => gate },
          { raw: '.\r\n' },
          'QUIT',
        ]),
      );
      // smtp-server keeps the last few bytes back while it looks for the final dot.
      await waitUntil('30 bodies held', () => inFlight() > 30 * (part(0).length - 10) || undefined);
      const held = inFlight();

      // RFC 1870 §6.1: a declared SIZE that cannot be held now is refused before the data.
      const early = await smtpConversation(smallPort, [
        'EHLO client.test',
        'MAIL FROM:<sender@sender.test> SIZE=20000',
        'QUIT',
      ]);
      assert.match(early[2]!, /^452 4\.3\.1 /);

      // Undeclared: the data is read and dropped, then 452 4.3.1; nothing queued.
      const before = await resolveStreamCount();
      await assert.rejects(
        sendMail({
          port: smallPort,
          from: 'sender@sender.test',
          to: ['alice@example.org'],
          raw: message('one too many', lines('o', 20_000)),
        }),
        (err: { response?: string }) => /^452 4\.3\.1 /.test(err.response ?? ''),
      );
      assert.equal(await resolveStreamCount(), before);
      assert.equal(inFlight(), held, 'the refused message released what it had reserved');

      release();
      for (const replies of await Promise.all(holders)) assert.match(replies[5]!, /^250 2\.0\.0 /);
      assert.equal(await resolveStreamCount(), before + 30);
      await waitUntil('budget released after the 250s', () => inFlight() === 0 || undefined);

      // A body larger than the whole budget still goes through: it streams, holding only chunks.
      const large = message('larger than the budget', `${'L'.repeat(78)}\r\n`.repeat(8000)); // 640 KB
      const bigMax = await ingressService.start({
        ...ctx,
        config: {
          ...config,
          ingress: { ...config.ingress, maxBodyBytesInFlight: budgetBytes, maxMessageBytes: 1024 * 1024 },
        },
      });
      try {
        const bigPort = (bigMax.info!() as { ports: number[] }).ports[0]!;
        const reply = await sendMail({
          port: bigPort,
          from: 'sender@sender.test',
          to: ['alice@example.org'],
          raw: large,
        });
        assert.match(reply.response, /^250 /);
        const env = await lastQueued();
        assert.equal(env.body.kind, 'object');
        assert.equal(env.body.size, large.length);
        assert.equal((bigMax.info!() as { bodyBytesInFlight: number }).bodyBytesInFlight, 0);
      } finally {
        await bigMax.stop();
      }
    } finally {
      await small.stop();
    }
  });
});

describe('envelope parameters', () => {
  test('RFC 3461 DSN (RET, ENVID, NOTIFY, ORCPT), BODY and HELO are carried in the envelope', async () => {
    const replies = await smtpConversation(port, [
      'HELO old-client.test',
      'MAIL FROM:<sender@sender.test> BODY=8BITMIME RET=HDRS ENVID=QQ314159',
      'RCPT TO:<alice@example.org> NOTIFY=FAILURE,DELAY ORCPT=rfc822;alice@example.org',
      'RCPT TO:<bob@example.org>',
      'DATA',
      { raw: `${message('dsn params').toString('latin1')}.\r\n` },
      'QUIT',
    ]);
    const queueId = /queued as ([0-9A-Z]+)/.exec(replies[6] ?? '')?.[1];
    assert.ok(queueId, replies.join(' | '));
    const env = await lastQueued();
    assert.equal(env.id, queueId);
    assert.deepEqual(env.mailFrom, {
      address: 'sender@sender.test',
      body: '8BITMIME',
      ret: 'HDRS',
      envid: 'QQ314159',
    });
    assert.deepEqual(env.recipients[0], {
      address: 'alice@example.org',
      original: 'alice@example.org',
      notify: ['FAILURE', 'DELAY'],
      orcpt: 'rfc822;alice@example.org',
      status: 'pending',
    });
    assert.equal(env.recipients[1]?.notify, undefined);
    // Two recipients: no "for" (RFC 5321 §7.2); HELO, not EHLO: protocol SMTP (RFC 3848).
    const received = env.prepend[0]!.value;
    assert.match(received, /^from old-client\.test /);
    assert.match(received, / with SMTP id /);
    assert.doesNotMatch(received, /for </);
  });
});

describe('graceful stop', () => {
  test('idle sessions get 421 at once, a transaction in flight is answered 250, then the port is closed', async () => {
    const second = await ingressService.start(ctx);
    const info = second.info ? (second.info() as { ports: number[] }) : { ports: [] };
    const port2 = info.ports[0]!;
    const idle = smtpConversation(port2, ['EHLO idle.test', { raw: '', reply: true }]);
    let stopped: Promise<void> | undefined;
    const busy = await smtpConversation(port2, [
      'EHLO busy.test',
      'MAIL FROM:<sender@sender.test>',
      'RCPT TO:<alice@example.org>',
      'DATA',
      { raw: message('in flight during stop'), reply: false },
      {
        action: () => {
          stopped = second.stop();
        },
      },
      // The reply to the dot, then the unsolicited 421 as the session is drained.
      { raw: '.\r\n' },
      'NOOP',
    ]);
    assert.match(busy[5]!, /^250 2\.0\.0 Ok: queued as /);
    assert.match(busy[6] ?? '', /^421 4\.3\.2 /);
    const idleReplies = await idle;
    assert.match(idleReplies.at(-1)!, /^421 4\.3\.2 /);
    await stopped;
    await assert.rejects(smtpConversation(port2, ['EHLO late.test']), /ECONNREFUSED/);
  });
});

describe('the filter decides before 250', () => {
  test('a filter that does not answer in time: 451 4.3.0, nothing queued, the stored body removed', async () => {
    await filter.stop();
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => {
      release = r;
    });
    const silent = bus.serve(subjects.filterVerdict, queueGroups.filter, { concurrency: 4 }, async () => {
      await hold;
      return encoder.encode('{}');
    });
    try {
      const queuedBefore = await resolveStreamCount();
      const objectsBefore = await bodyObjectCount();
      const raw = message('filter timeout', lines('z', 20 * 1024)); // object-store sized
      await assert.rejects(
        sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw }),
        (err: { responseCode?: number; response?: string }) => {
          assert.match(err.response ?? '', /^451 4\.3\.0 /);
          return true;
        },
      );
      assert.equal(await resolveStreamCount(), queuedBefore);
      assert.equal(await bodyObjectCount(), objectsBefore);
    } finally {
      release();
      await silent.stop();
      filter = await filterService.start(ctx);
    }
  });

  /** A filter replica that never finishes (concurrency 1, no wait queue), its one slot taken. */
  async function saturatedFilter() {
    let release: () => void = () => {};
    const hold = new Promise<void>((r) => {
      release = r;
    });
    let started = 0;
    let shed = 0;
    const server = bus.serve(
      subjects.filterVerdict,
      queueGroups.filter,
      { concurrency: 1, maxQueued: 0, onShed: () => shed++ },
      async () => {
        started++;
        await hold;
        return encoder.encode('{}');
      },
    );
    await bus.nc.flush();
    // Take its only slot while it is the only replica (answered after release, never read).
    const occupying = bus.request(subjects.filterVerdict, encoder.encode('{}'), 30_000).catch(() => {});
    await waitUntil('the saturated filter holds its slot', () => started === 1);
    return {
      shedCount: () => shed,
      stop: async () => {
        release();
        await occupying;
        await server.stop();
      },
    };
  }

  test('every replica saturated: 451 4.3.2 at once (well before filterTimeout), counted and nothing queued', async () => {
    await filter.stop();
    const busy = await saturatedFilter();
    try {
      const queuedBefore = await resolveStreamCount();
      const shedBefore = await rejectedCount('filter-busy');
      const t0 = Date.now();
      await assert.rejects(
        sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw: message('shed') }),
        (err: { response?: string }) => {
          assert.match(err.response ?? '', /^451 4\.3\.2 Content filter busy, try again later/);
          return true;
        },
      );
      const took = Date.now() - t0;
      assert.ok(took < 900, `shed promptly (filterTimeout is 1000 ms), took ${took} ms`);
      assert.equal(busy.shedCount(), 2, 'asked once, then once more');
      assert.equal(await rejectedCount('filter-busy'), shedBefore + 1);
      assert.equal(await resolveStreamCount(), queuedBefore);
    } finally {
      await busy.stop();
      filter = await filterService.start(ctx);
    }
  });

  test('one replica saturated, one free: a busy answer is asked again and the retry is accepted by the free one', async () => {
    await filter.stop();
    const busy = await saturatedFilter();
    filter = await filterService.start(ctx);
    try {
      // The queue group picks a member at random, so each ask reaches the saturated replica half the
      // time: a message is shed only when both asks do (1 in 4 here). Every message is either queued
      // or shed with 451 4.3.2, and busy answers beyond two per shed message are retries that then
      // reached the free replica and were queued.
      let sent = 0;
      let accepted = 0;
      let shedMessages = 0;
      const retriedAndAccepted = () => busy.shedCount() - 2 * shedMessages;
      while (retriedAndAccepted() < 3 && sent < 60) {
        sent++;
        const outcome = await sendMail({
          port,
          from: 'sender@sender.test',
          to: ['alice@example.org'],
          raw: message(`spread ${sent}`),
        }).then(
          (reply) => reply.response,
          (err: { response?: string }) => err.response ?? String(err),
        );
        if (/^250 2\.0\.0 Ok: queued as /.test(outcome)) accepted++;
        else {
          assert.match(outcome, /^451 4\.3\.2 /);
          shedMessages++;
        }
      }
      assert.ok(
        retriedAndAccepted() >= 3,
        `retries reached the free replica: ${retriedAndAccepted()} of ${sent}`,
      );
      assert.equal(accepted + shedMessages, sent, 'each message queued or shed, none lost or timed out');
    } finally {
      await busy.stop();
    }
  });

  test('no filter running at all: 451 4.3.0', async () => {
    await filter.stop();
    try {
      await assert.rejects(
        sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw: message('no filter') }),
        (err: { response?: string }) => /^451 4\.3\.0 /.test(err.response ?? ''),
      );
    } finally {
      filter = await filterService.start(ctx);
    }
  });
});

describe('the free-space guard', () => {
  test('less room than bus.store.minFreeBytes: 452 4.3.1 before anything is stored, metric set', async () => {
    // The threshold is above any free space this machine has: the guard trips at once.
    const tight = parseConfig(
      {
        ...config,
        ingress: { ...config.ingress, listen: [{ host: '127.0.0.1', port: 0 }] },
        bus: { ...config.bus, store: { ...config.bus.store, minFreeBytes: 2 ** 52 } },
      },
      'guard-test',
    );
    const guarded = await startServiceContext(tight, 'guard-test', { logDestination: devNull() as never });
    const svc = await ingressService.start(guarded.ctx);
    try {
      const guardPort = (svc.info!() as { ports: number[] }).ports[0]!;
      const before = await resolveStreamCount();
      const objects = await bodyObjectCount();
      await assert.rejects(
        sendMail({
          port: guardPort,
          from: 'sender@sender.test',
          to: ['alice@example.org'],
          raw: message('guarded', lines('z', 20 * 1024)),
        }),
        (err: { response?: string }) => /^452 4\.3\.1 /.test(err.response ?? ''),
      );
      assert.equal(await resolveStreamCount(), before, 'nothing queued');
      assert.equal(await bodyObjectCount(), objects, 'no body stored');
      const metrics = await guarded.ctx.metrics.registry.metrics();
      assert.match(metrics, /^sluice_store_guard_tripped 1$/m);
      assert.match(metrics, /sluice_messages_rejected_total\{stage="ingress",reason="store-low"\} 1/);
      // The ingress with the normal threshold still takes mail on the same store.
      const ok = await sendMail({
        port,
        from: 'sender@sender.test',
        to: ['alice@example.org'],
        raw: message('room'),
      });
      assert.match(ok.response, /^250 /);
    } finally {
      await svc.stop();
      await guarded.close();
    }
  });
});

describe('250 only after the PubAck', () => {
  test('no stream to take the message: 451 4.3.0; a full stream: 452 4.3.1', async () => {
    const wanted = (await jsm.streams.info(streams.resolve.name)).config;
    try {
      await jsm.streams.delete(streams.resolve.name);
      await assert.rejects(
        sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw: message('no stream') }),
        (err: { response?: string }) => /^451 4\.3\.0 /.test(err.response ?? ''),
      );
      await jsm.streams.add({ ...wanted, max_bytes: 64 });
      await assert.rejects(
        sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw: message('full') }),
        (err: { response?: string }) => /^452 4\.3\.1 /.test(err.response ?? ''),
      );
      assert.equal(await resolveStreamCount(), 0);
    } finally {
      await jsm.streams.delete(streams.resolve.name).catch(() => {});
      await bus.ensureTopology();
    }
  });

  test('NATS stopped during the transaction: the final dot gets 451, not 250', async () => {
    const node = nats.nodes[0]!;
    const replies = await smtpConversation(
      port,
      [
        'EHLO client.test',
        'MAIL FROM:<sender@sender.test>',
        'RCPT TO:<alice@example.org>',
        { action: () => node.kill() },
        'DATA',
        { raw: message('nats down'), reply: false },
        { raw: '.\r\n' },
        'QUIT',
      ],
      { timeoutMs: 15_000 },
    );
    assert.match(replies[3]!, /^250 /, 'RCPT was accepted while NATS was up');
    assert.match(replies[5]!, /^451 4\.3\.0 /);
    await node.restart();
    // The bus reconnects by itself; mail flows again.
    const reply = await waitUntil(
      'mail to flow again after NATS is back',
      async () =>
        (
          await sendMail({
            port,
            from: 'sender@sender.test',
            to: ['alice@example.org'],
            raw: message('back'),
          })
        ).response,
      { intervalMs: 200 },
    );
    assert.match(reply, /^250 /);
  });
});
