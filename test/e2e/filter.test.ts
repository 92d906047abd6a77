/**
 * The filter's verdicts end to end (ingress -> filter -> ... -> egress ->
 * sink, one process, real nats-server, real DNS on loopback): a forged
 * Authentication-Results naming our host never reaches the recipient (RFC
 * 8601 §5: the egress leaves it out), a spoofed From of our own domain from
 * outside is refused at the final dot with 550 5.7.1, and a DNS outage is
 * answered 451, never guessed at. A second message from a sender asks DNS
 * nothing new while the answers' TTLs last (the filter's DNS cache).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type SmtpSink, sendMail } from '@sluice/test-harness';
import { type Pipeline, startPipeline } from './helpers.ts';

let pipeline: Pipeline;
let sink: SmtpSink;
let port: number;

before(async () => {
  pipeline = await startPipeline(
    'e2e',
    [
      { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
      { name: '_dmarc.sender.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
      { name: '_dmarc.example.org', type: 'TXT', data: 'v=DMARC1; p=reject' },
      { name: 'example.org', type: 'TXT', data: 'v=spf1 ip4:192.0.2.25 -all' },
    ],
    (sink) => ({
      domains: { primary: 'example.org' },
      routing: { forwards: { 'alice@example.org': ['alice@forward.test'] } },
      transports: { 'forward.test': { host: '127.0.0.1', port: sink.port } },
      ingress: { filterTimeout: 10 },
      dns: { timeout: 1 },
    }),
  );
  ({ sink, port } = pipeline);
});

after(async () => {
  await pipeline?.stop();
});

function message(from: string, subject: string, extra: string[] = []): Buffer {
  return Buffer.from(
    [
      ...extra,
      `From: ${from}`,
      'To: alice@example.org',
      `Subject: ${subject}`,
      `Message-ID: <${randomBytes(8).toString('hex')}@sender.test>`,
      `Date: ${new Date().toUTCString()}`,
      '',
      'Hello.',
      '',
    ].join('\r\n'),
  );
}

describe('filter verdicts through the pipeline', () => {
  test('a forged Authentication-Results with our authserv-id is gone at the sink; ours and others stay', async () => {
    const subject = `forged-ar-${randomBytes(4).toString('hex')}`;
    const raw = message('s@sender.test', subject, [
      'Authentication-Results: mx.example.org; dkim=pass header.d=bank.example; dmarc=pass',
      'Authentication-Results: upstream.example; spf=pass smtp.mailfrom=s@sender.test',
    ]);
    await sendMail({ port, from: 's@sender.test', to: ['alice@example.org'], raw });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    const text = got.raw.toString('utf8');
    const head = text.slice(0, text.indexOf('\r\n\r\n'));
    const ars = head.split(/\r\n(?![ \t])/).filter((l) => /^Authentication-Results:/i.test(l));
    assert.equal(ars.length, 2, ars.join('\n---\n'));
    assert.match(ars[0]!, /^Authentication-Results: mx\.example\.org;\r\n\tdkim=none[\s\S]*spf=pass/);
    assert.match(ars[1]!, /^Authentication-Results: upstream\.example;/);
    assert.doesNotMatch(head, /bank\.example/);
    assert.match(head, /^X-Spam-Status: No, score=/m);
    assert.ok(text.endsWith('\r\nHello.\r\n'));
  });

  test('the next message from the same sender is checked from the DNS cache (dns.cacheMaxTtl, decision 0043)', async () => {
    const asked = () =>
      pipeline.dns.queries.filter(
        (q) => q.type === 'TXT' && ['sender.test', '_dmarc.sender.test'].includes(q.name.toLowerCase()),
      ).length;
    const send = async (subject: string) => {
      await sendMail({
        port,
        from: 's@sender.test',
        to: ['alice@example.org'],
        raw: message('s@sender.test', subject),
      });
      const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
      assert.match(got.raw.toString('utf8'), /spf=pass/);
    };
    await send(`cache-1-${randomBytes(4).toString('hex')}`);
    const afterFirst = asked();
    assert.ok(afterFirst >= 2, 'SPF and DMARC of sender.test were asked');
    await send(`cache-2-${randomBytes(4).toString('hex')}`);
    assert.equal(asked(), afterFirst, 'no new SPF or DMARC query within the TTL');
  });

  test('a spoofed From of our domain from outside is refused with 550 5.7.1', async () => {
    const raw = message('CEO <ceo@example.org>', 'urgent wire transfer');
    const err = await sendMail({ port, from: 's@sender.test', to: ['alice@example.org'], raw }).then(
      () => null,
      (e: { responseCode?: number; response?: string }) => e,
    );
    assert.equal(err?.responseCode, 550);
    assert.match(err?.response ?? '', /^550 5\.7\.1 Message rejected: Sender domain is ours/);
  });
});
