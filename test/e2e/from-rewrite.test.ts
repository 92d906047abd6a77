/**
 * End to end (real nats-server, loopback DNS, a real SMTP sink standing for
 * the forward's receiver): the optional From rewrite of forwards
 * (rewriter.fromRewrite, services/rewriter/src/from-rewrite.ts).
 *
 * sender.test publishes p=reject; its message has no DKIM signature, so at
 * our MX it passes DMARC on SPF only — and after a forward (SRS: the SPF
 * domain is ours) it would fail DMARC at the receiver and be rejected.
 *   - To alice@example.org, whose forward opts in: at the sink the From is
 *     ours (alice@example.org, "Sender via example.org"), Reply-To is the
 *     original, there is exactly one From, our DKIM signature (d=example.org)
 *     verifies with mailauth and dkimpy, and the receiver's DMARC passes
 *     (aligned with example.org); the ARC seal covers the new From.
 *   - To bob@example.org, whose forward does not opt in: the message is
 *     unchanged (the original From, no Reply-To added), and DMARC fails at
 *     the receiver — the problem the option exists for.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { dkimTxtRecord, loadDkimKey } from '@sluice/dkim';
import { DKIMPY_PYTHON, type DnsRecord, dkimpyVerify, type SmtpSink, sendMail } from '@sluice/test-harness';
import { authenticate } from 'mailauth';
import { lookupVia, type Pipeline, plainTextMessage, startPipeline } from './helpers.ts';

const OUR_OUTBOUND_IP = '192.0.2.10';
const ourRsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
  type: 'pkcs8',
  format: 'pem',
}) as string;

const txt: Record<string, string> = {
  'sender.test': 'v=spf1 ip4:127.0.0.1 -all',
  '_dmarc.sender.test': 'v=DMARC1; p=reject',
  'example.org': 'v=spf1 ip4:127.0.0.1 ip4:192.0.2.10 -all',
  '_dmarc.example.org': 'v=DMARC1; p=reject',
  'srs.example.org': `v=spf1 ip4:${OUR_OUTBOUND_IP} -all`,
  'r1._domainkey.example.org': dkimTxtRecord(
    loadDkimKey({ domain: 'example.org', selector: 'r1', privateKey: ourRsa, active: true }, 'r1'),
  ),
};

let pipeline: Pipeline;
let sink: SmtpSink;
let port: number;
let lookup: (name: string, type: string) => Promise<unknown>;

before(async () => {
  const records: DnsRecord[] = Object.entries(txt).map(([name, data]) => ({ name, type: 'TXT', data }));
  pipeline = await startPipeline('e2e-from-rewrite', records, (sink) => ({
    domains: { primary: 'example.org', aliases: ['example.com'] },
    routing: {
      forwards: { 'alice@example.org': ['alice@forward.test'], 'bob@example.org': ['bob@forward.test'] },
    },
    transports: { 'forward.test': { host: '127.0.0.1', port: sink.port } },
    rewriter: { fromRewrite: { enabled: true, forwards: ['alice@example.org'] } },
    srs: { secrets: [randomBytes(24).toString('base64')] },
    dkim: { keys: [{ domain: 'example.org', selector: 'r1', privateKey: ourRsa }] },
  }));
  ({ sink, port } = pipeline);
  lookup = lookupVia(pipeline.dns);
});

after(async () => {
  await pipeline?.stop();
});

const message = (to: string, subject: string): Buffer =>
  plainTextMessage('Sender <sender@sender.test>', to, subject);

type Verdict = {
  arc: { status: { result: string } };
  dkim: { results: Array<{ signingDomain: string; status: { result: string } }> };
  dmarc: { status: { result: string; header?: { from?: string } }; domain?: string };
};

/** What a receiver such as Gmail concludes, via mailauth, for mail from our outbound address. */
async function receiverVerdict(raw: Buffer, sender: string): Promise<Verdict> {
  return (await authenticate(raw, {
    ip: OUR_OUTBOUND_IP,
    helo: 'mx.example.org',
    sender,
    mta: 'mx.gmail.test',
    resolver: lookup,
    disableBimi: true,
  } as never)) as unknown as Verdict;
}

const headerLines = (raw: Buffer, name: string) =>
  raw
    .toString()
    .split('\r\n\r\n')[0]!
    .replace(/\r\n[ \t]+/g, ' ')
    .split('\r\n')
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));

const haveDkimpy = existsSync(DKIMPY_PYTHON) && existsSync('/usr/lib/python3/dist-packages/dkim');

describe('From rewrite of forwards from p=reject domains', () => {
  test('an opted-in forward leaves with our From, the original in Reply-To, and passes DMARC as ours', async () => {
    const subject = `opted in ${randomBytes(4).toString('hex')}`;
    await sendMail({
      port,
      from: 'sender@sender.test',
      to: ['alice@example.org'],
      raw: message('alice@example.org', subject),
    });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.deepEqual(got.rcptTo, ['alice@forward.test']);
    assert.deepEqual(headerLines(got.raw, 'From'), ['From: "Sender via example.org" <alice@example.org>']);
    assert.deepEqual(headerLines(got.raw, 'Reply-To'), ['Reply-To: Sender <sender@sender.test>']);
    assert.deepEqual(headerLines(got.raw, 'X-Original-From'), [
      'X-Original-From: Sender <sender@sender.test>',
    ]);

    const res = await receiverVerdict(got.raw, got.mailFrom);
    assert.deepEqual(
      res.dkim.results.map((r) => [r.signingDomain, r.status.result]),
      [['example.org', 'pass']],
    );
    assert.equal(res.dmarc.status.result, 'pass', 'DMARC for example.org aligns with our signature');
    assert.equal(res.dmarc.domain, 'example.org');
    assert.equal(res.arc.status.result, 'pass', 'the ARC seal covers the rewritten From');
    if (haveDkimpy) {
      const verdict = await dkimpyVerify(got.raw, txt);
      assert.deepEqual(
        verdict.dkim.map((d) => d.ok),
        [true],
        JSON.stringify(verdict),
      );
      assert.equal(verdict.arc.cv, 'pass', verdict.arc.comment);
    }
  });

  test('a forward that does not opt in is left unchanged (and fails DMARC at the receiver)', async () => {
    const subject = `not opted in ${randomBytes(4).toString('hex')}`;
    await sendMail({
      port,
      from: 'sender@sender.test',
      to: ['bob@example.org'],
      raw: message('bob@example.org', subject),
    });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.deepEqual(got.rcptTo, ['bob@forward.test']);
    assert.deepEqual(headerLines(got.raw, 'From'), ['From: Sender <sender@sender.test>']);
    assert.deepEqual(headerLines(got.raw, 'Reply-To'), []);
    assert.deepEqual(headerLines(got.raw, 'X-Original-From'), []);
    const res = await receiverVerdict(got.raw, got.mailFrom);
    assert.equal(res.dkim.results.filter((r) => r.signingDomain === 'example.org').length, 0);
    assert.equal(res.dmarc.status.result, 'fail');
  });
});
