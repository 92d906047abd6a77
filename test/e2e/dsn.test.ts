/**
 * Delivery status notifications end to end, in one process like `sluice run`:
 * a real nats-server, every stage, a destination sink that refuses chosen
 * recipients (550 at RCPT, 5.7.26 after the dot, 451 for ever) and a sink for
 * the senders' domain where the DSNs arrive. Proves: one RFC 3464 report per
 * failure, listing only the failed recipients; expiry bounces; delay
 * warnings once; no DSN for the null sender, NOTIFY=NEVER or a failing DSN;
 * RET=HDRS; a republished DSN is dropped as a duplicate; the forward owner's
 * notice and its daily limit.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { dkimTxtRecord, loadDkimKey } from '@sluice/dkim';
import { sendNotifications } from '@sluice/egress';
import { createRedactor } from '@sluice/log';
import { dedupIds, newQueueId, parseEnvelope } from '@sluice/proto';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  type SinkMessage,
  type SmtpSink,
  smtpConversation,
  startDnsServer,
  startNats,
  startSmtpSink,
  waitForDrainedQueues,
  waitUntil,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort, queueIdFromReply } from './helpers.ts';

let nats: NatsTestServer;
let dest: SmtpSink;
let senders: SmtpSink;
/** A next hop that does not advertise DSN (RFC 3461): we report "relayed" for it. */
let noDsn: SmtpSink;
let dns: DnsServer;
let rt: Runtime;
let port: number;

const LIFETIME = 6;
const dkimKey = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

before(async () => {
  nats = await startNats();
  dest = await startSmtpSink({
    failWith: (rcpt) => {
      if (rcpt.startsWith('bad')) return { code: 550, message: '5.1.1 no such user\r\nX-Injected: yes' };
      if (rcpt.startsWith('slow')) return { code: 451, message: '4.2.0 try again later' };
      return undefined;
    },
    // A DMARC refusal of forwarded mail (Gmail's 5.7.26); the null-sender notice passes.
    failData: (m) =>
      m.rcptTo.some((r) => r.startsWith('dmarc')) && m.mailFrom !== ''
        ? { code: 550, message: '5.7.26 unauthenticated forwarded mail refused' }
        : undefined,
  });
  noDsn = await startSmtpSink({ hideDsn: true });
  senders = await startSmtpSink({
    failWith: (rcpt) => (rcpt.startsWith('gone@') ? { code: 550, message: '5.1.1 sender gone' } : undefined),
  });
  dns = await startDnsServer([
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: 'other.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    {
      name: 'e1._domainkey.example.org',
      type: 'TXT',
      data: dkimTxtRecord(
        loadDkimKey({ domain: 'example.org', selector: 'e1', privateKey: dkimKey, active: true }, 'e1'),
      ),
    },
  ]);
  const forwards: Record<string, string[]> = {};
  for (const name of ['bad', 'good', 'bad2', 'bad3', 'bad4', 'bad5', 'bad6', 'slow', 'dmarc', 'dmarc2']) {
    forwards[`${name}@example.org`] = [`${name}@dest.test`];
  }
  forwards['plain@example.org'] = ['plain@nodsn.test'];
  const config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      routing: { forwards },
      transports: {
        'dest.test': { host: '127.0.0.1', port: dest.port },
        'nodsn.test': { host: '127.0.0.1', port: noDsn.port },
        'sender.test': { host: '127.0.0.1', port: senders.port },
        'other.test': { host: '127.0.0.1', port: senders.port },
      },
      // Forwards get an SRS sender: the DSNs go to our SRS address and the resolver reverses it.
      srs: { secrets: [randomBytes(24).toString('base64')] },
      dkim: { keys: [{ domain: 'example.org', selector: 'e1', privateKey: dkimKey }] },
      nats: { servers: [nats.url] },
      bus: { queueLifetime: LIFETIME, maxDeliver: 100 },
      egress: { retrySchedule: [1], dsn: { delayWarningAfter: 1 }, forwardFailureNotice: { maxPerDay: 1 } },
      ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
      dns: { servers: [dns.address], timeout: 2 },
      log: { level: 'warn' },
    },
    'e2e-dsn',
  );
  rt = await startRuntime({ config, services: allServices, logDestination: devNull() });
  port = ingressPort(rt);
});

after(async () => {
  await rt?.stop();
  await Promise.all([dest?.stop(), noDsn?.stop(), senders?.stop(), dns?.stop()]);
  await nats?.stop();
});

interface Rcpt {
  to: string;
  params?: string;
}

/** One message by SMTP with DSN parameters; resolves with its queue id and subject. */
async function send(
  from: string,
  rcpts: Rcpt[],
  mailParams = '',
): Promise<{ queueId: string; subject: string }> {
  const subject = `dsn-test ${randomBytes(6).toString('hex')}`;
  const raw = [
    `From: <${from || 'daemon@sender.test'}>`,
    `To: <${rcpts[0]!.to}>`,
    `Subject: ${subject}`,
    `Message-ID: <${randomBytes(8).toString('hex')}@sender.test>`,
    `Date: ${new Date().toUTCString()}`,
    '',
    'The body line of the original message.',
    '',
  ].join('\r\n');
  const replies = await smtpConversation(port, [
    'EHLO client.test',
    `MAIL FROM:<${from}>${mailParams ? ` ${mailParams}` : ''}`,
    ...rcpts.map((r) => `RCPT TO:<${r.to}>${r.params ? ` ${r.params}` : ''}`),
    'DATA',
    { raw: `${raw}.\r\n` },
    'QUIT',
  ]);
  const final = replies[4 + rcpts.length]!;
  assert.match(final, /^250 /, `message accepted: ${replies.join(' | ')}`);
  return { queueId: queueIdFromReply(final), subject };
}

const reportFor = (subject: string) => (m: SinkMessage) =>
  m.mailFrom === '' && m.raw.includes(Buffer.from(subject));

/** The message/delivery-status part, split into its field blocks. */
function statusBlocks(raw: string): Array<Map<string, string>> {
  const ct = /^Content-Type: multipart\/report; report-type=delivery-status;\r\n\tboundary="([^"]+)"/m.exec(
    raw,
  );
  assert.ok(ct, 'a multipart/report with report-type=delivery-status (RFC 6522)');
  const parts = raw.split(`--${ct[1]}`);
  assert.equal(parts.at(-1)!.trim(), '--', 'closing boundary');
  const status = parts.find((p) =>
    /^\r\nContent-Description: Delivery report\r\nContent-Type: message\/delivery-status\r\n/.test(p),
  );
  assert.ok(status, 'a message/delivery-status part');
  const body = status.slice(status.indexOf('\r\n\r\n') + 4).trim();
  return body.split('\r\n\r\n').map((block) => {
    const fields = new Map<string, string>();
    for (const line of block.split('\r\n')) {
      const i = line.indexOf(':');
      fields.set(line.slice(0, i), line.slice(i + 1).trim());
    }
    return fields;
  });
}

async function settled(): Promise<void> {
  await waitForDrainedQueues(rt.bus, 30_000);
}

describe('delivery status notifications', () => {
  test('a 550 for one of two recipients: one DSN to the sender, listing only the failed one', async () => {
    const { queueId, subject } = await send(
      'alice@sender.test',
      [{ to: 'bad@example.org', params: 'ORCPT=rfc822;bad@example.org' }, { to: 'good@example.org' }],
      'ENVID=env-42',
    );
    const dsn = await senders.waitFor(reportFor(subject), 20_000);
    // Sent to our SRS address (the sender the forward target saw), reversed by the resolver.
    const forwarded = dest.messages.find((m) => m.raw.includes(Buffer.from(subject)))!;
    assert.match(forwarded.mailFrom, /^SRS0=.*=sender\.test=alice@srs\.example\.org$/);
    assert.deepEqual(dsn.rcptTo, ['alice@sender.test']);
    const raw = dsn.raw.toString('utf8');
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'));
    assert.match(head, /^To: <alice@sender\.test>$/m);
    // Signed by the rewriter like all our mail.
    assert.match(head, /^DKIM-Signature:[\s\S]*?d=example\.org/m);
    assert.match(head, /^From: Mail Delivery System <MAILER-DAEMON@example\.org>$/m);
    assert.match(head, /^Auto-Submitted: auto-replied$/m);
    const [perMessage, ...perRecipient] = statusBlocks(raw);
    assert.equal(perMessage!.get('Reporting-MTA'), 'dns; mx.example.org');
    assert.equal(perMessage!.get('Original-Envelope-Id'), 'env-42');
    assert.ok(perMessage!.get('Arrival-Date'), 'Arrival-Date');
    assert.equal(perRecipient.length, 1, 'only the failed recipient is listed');
    const r = perRecipient[0]!;
    assert.equal(r.get('Final-Recipient'), 'rfc822; bad@dest.test');
    assert.equal(r.get('Original-Recipient'), 'rfc822;bad@example.org');
    assert.equal(r.get('Action'), 'failed');
    assert.equal(r.get('Status'), '5.1.1');
    assert.equal(r.get('Remote-MTA'), `dns; 127.0.0.1:${dest.port}`);
    assert.match(r.get('Diagnostic-Code')!, /^smtp; 550 5\.1\.1 no such user/);
    assert.ok(r.get('Last-Attempt-Date'));
    // The remote's multi-line reply cannot inject a field: it stays on the Diagnostic-Code line.
    assert.ok(!/^X-Injected:/m.test(raw), 'no header or field injected from the reply');
    // RET default FULL: the original message comes back whole.
    assert.match(raw, /Content-Type: message\/rfc822\r\n\r\n[\s\S]*The body line of the original message\./);
    await settled();
    assert.equal(senders.messages.filter(reportFor(subject)).length, 1, 'exactly one DSN');
    assert.ok(
      dest.messages.some((m) => m.rcptTo.includes('good@dest.test') && m.raw.includes(Buffer.from(subject))),
    );
    assert.ok(queueId);
  });

  test('a redelivery after a crash before the ledger write queues the same DSN: still one arrives', async () => {
    const queueId = newQueueId();
    const subject = `replayed ${randomBytes(6).toString('hex')}`;
    const stored = await rt.bus.storeBody(queueId, Buffer.from(`Subject: ${subject}\r\n\r\nbody\r\n`));
    const env = parseEnvelope({
      v: 1,
      id: queueId,
      receivedAt: new Date().toISOString(),
      source: 'mx',
      receivedBy: 'mx.example.org',
      client: { ip: '127.0.0.1', helo: 'client.test' },
      mailFrom: { address: 'replay@sender.test' },
      recipients: [{ address: 'bad6@dest.test', original: 'bad6@example.org' }],
      route: { kind: 'smtp', name: 'dest.test', host: '127.0.0.1', port: dest.port },
      body: stored.ref,
    });
    const deps = { ...rt, redact: createRedactor({ mode: 'clear' }) };
    const outcome = {
      address: 'bad6@dest.test',
      outcome: 'failed' as const,
      reply: '550 5.1.1 no',
      host: 'h:25',
    };
    // The attempt and its redelivery (the process died before the ledger write): the same DSN twice.
    for (let attempt = 1; attempt <= 2; attempt++) {
      const d = {
        envelope: env,
        inlineBody: stored.inline,
        deliveryCount: attempt,
        streamSeq: attempt,
        working() {},
      };
      await sendNotifications(env, d, [outcome], deps);
    }
    await senders.waitFor(reportFor(subject), 20_000);
    await settled();
    assert.equal(senders.messages.filter(reportFor(subject)).length, 1, 'one DSN after a redelivery');
  });

  test('RET=HDRS returns only the headers, as text/rfc822-headers', async () => {
    const { subject } = await send('hdrs@sender.test', [{ to: 'bad2@example.org' }], 'RET=HDRS');
    const dsn = await senders.waitFor(reportFor(subject), 20_000);
    const raw = dsn.raw.toString('utf8');
    assert.match(raw, /Content-Type: text\/rfc822-headers\r\n\r\n[\s\S]*Subject: dsn-test/);
    assert.ok(!raw.includes('The body line of the original message.'), 'no body returned');
  });

  test('the null sender and NOTIFY=NEVER get no DSN', async () => {
    const a = await send('', [{ to: 'bad3@example.org' }]);
    const b = await send('never@sender.test', [{ to: 'bad4@example.org', params: 'NOTIFY=NEVER' }]);
    for (const q of [a.queueId, b.queueId]) {
      await waitUntil(
        () => `the failure of ${q} in its timeline`,
        async () =>
          (await rt.bus.readTimeline(q)).some((e) => e.kind === 'delivery' && e.outcome === 'failed'),
        { intervalMs: 100, timeoutMs: 20_000 },
      );
    }
    await settled();
    assert.equal(senders.messages.filter(reportFor(a.subject)).length, 0);
    assert.equal(senders.messages.filter(reportFor(b.subject)).length, 0);
  });

  test('a DSN that fails itself gets no DSN about it', async () => {
    const { queueId, subject } = await send('gone@sender.test', [{ to: 'bad5@example.org' }]);
    const dsnId = dedupIds.dsnQueueId(queueId, [{ action: 'failed', address: 'bad5@dest.test' }]);
    await waitUntil(
      () => `the DSN ${dsnId} to fail at the sender's server`,
      async () =>
        (await rt.bus.readTimeline(dsnId)).some((e) => e.kind === 'delivery' && e.outcome === 'failed'),
      { intervalMs: 100, timeoutMs: 20_000 },
    );
    await settled();
    assert.equal(senders.messages.filter(reportFor(subject)).length, 0);
    assert.equal(
      [...senders.messages, ...dest.messages].filter((m) => m.raw.includes(Buffer.from(dsnId))).length,
      0,
      'nothing reports on the failed DSN',
    );
  });

  test('NOTIFY=SUCCESS towards a DSN-capable hop is passed on with ORCPT (RFC 3461 §5.2.1); we send no DSN', async () => {
    const { subject } = await send('happy@sender.test', [
      { to: 'good@example.org', params: 'NOTIFY=SUCCESS' },
    ]);
    const relayed = await dest.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.deepEqual(relayed.rcptDsn, [
      { address: 'good@dest.test', notify: ['SUCCESS'], orcpt: 'rfc822;good@example.org' },
    ]);
    await settled();
    assert.equal(senders.messages.filter(reportFor(subject)).length, 0, 'the next hop reports, not us');
  });

  test('NOTIFY=SUCCESS gives a "relayed" DSN after a 250 from a hop without DSN (§5.2.2)', async () => {
    const { subject } = await send('happy@sender.test', [
      { to: 'plain@example.org', params: 'NOTIFY=SUCCESS' },
    ]);
    const dsn = await senders.waitFor(reportFor(subject), 20_000);
    const [, r] = statusBlocks(dsn.raw.toString('utf8'));
    assert.equal(r!.get('Action'), 'relayed');
    assert.equal(r!.get('Status'), '2.0.0');
  });

  test('a recipient deferred until expiry: one delay warning, then one failure DSN', async () => {
    const { subject } = await send('patient@sender.test', [{ to: 'slow@example.org' }]);
    const failed = await senders.waitFor(
      (m) => reportFor(subject)(m) && m.raw.includes(Buffer.from('Action: failed')),
      (LIFETIME + 20) * 1000,
    );
    const [, r] = statusBlocks(failed.raw.toString('utf8'));
    assert.equal(r!.get('Status'), '5.4.7');
    assert.match(r!.get('Diagnostic-Code')!, /delivery time expired[\s\S]*4\.2\.0 try again later/);
    await settled();
    const reports = senders.messages.filter(reportFor(subject));
    const delayed = reports.filter((m) => m.raw.includes(Buffer.from('Action: delayed')));
    assert.equal(delayed.length, 1, 'one delay warning over all attempts');
    const [, w] = statusBlocks(delayed[0]!.raw.toString('utf8'));
    assert.equal(w!.get('Status'), '4.2.0');
    assert.ok(w!.get('Will-Retry-Until'), 'Will-Retry-Until (RFC 3464 §2.3.8)');
    assert.equal(reports.length, 2, 'one warning and one failure');
  });

  test('a forward target refusing forwarded mail: the owner is told, at most maxPerDay a day', async () => {
    const first = await send('carol@other.test', [{ to: 'dmarc@example.org' }]);
    const notice = await dest.waitFor(
      (m) => m.mailFrom === '' && m.raw.includes(Buffer.from('is refusing mail')),
      20_000,
    );
    assert.deepEqual(notice.rcptTo, ['dmarc@dest.test'], 'to the owner (forwarded on to its target)');
    const text = notice.raw.toString('utf8');
    assert.match(text, /Sender domain: other\.test/);
    assert.match(text, /5\.7\.26 unauthenticated forwarded mail refused/);
    assert.ok(!text.includes('carol@'), 'the sender address is not revealed');
    assert.ok(!text.includes(first.subject), 'the subject is not revealed');
    // The sender gets the DSN as well.
    await senders.waitFor(reportFor(first.subject), 20_000);
    // A second refusal the same day: the sender is told, the owner is not told again.
    const second = await send('carol@other.test', [{ to: 'dmarc@example.org' }]);
    await senders.waitFor(reportFor(second.subject), 20_000);
    await settled();
    const notices = dest.messages.filter(
      (m) => m.mailFrom === '' && m.raw.includes(Buffer.from('is refusing mail')),
    );
    assert.equal(notices.length, 1, 'rate limit: one notice per owner per day');
  });
});
