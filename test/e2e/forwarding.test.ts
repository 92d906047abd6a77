/**
 * End to end, in one process (real nats-server, loopback DNS, a real SMTP
 * sink standing for the outside world): what a receiver such as Gmail sees
 * of mail we forward and of mail we send.
 *
 *   - A message from sender.test (SPF "-all", DKIM-signed by sender.test)
 *     forwarded outside arrives with an SRS envelope sender whose SPF passes
 *     from our outbound address where the original sender's SPF fails, a
 *     valid ARC set (mailauth and dkimpy), and the original DKIM signature
 *     still valid (the body and its headers were not touched).
 *   - Mail with our From (authenticated: SPF and DMARC pass) arrives with
 *     rsa-sha256 and ed25519-sha256 signatures of example.org that verify.
 *   - A sender that is already another forwarder's SRS0 address leaves as
 *     SRS1. A bounce (null sender) to the SRS address goes back to the
 *     original sender, also to an address Debian's postsrsd made with the
 *     same secret; the same address from a non-null sender, a forged one, and an
 *     expired one are refused at RCPT.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { dkimTxtRecord, loadDkimKey } from '@sluice/dkim';
import { Srs } from '@sluice/srs';
import {
  DKIMPY_PYTHON,
  type DnsRecord,
  dkimpyVerify,
  POSTSRSD_BIN,
  type SmtpSink,
  sendMail,
  smtpConversation,
  startPostsrsd,
} from '@sluice/test-harness';
import { authenticate } from 'mailauth';
import { dkimSign } from 'mailauth/lib/dkim/sign.js';
import { spf } from 'mailauth/lib/spf/index.js';
import { lookupVia, type Pipeline, plainTextMessage, startPipeline } from './helpers.ts';

const pem = (type: 'rsa' | 'ed25519') =>
  (type === 'rsa'
    ? generateKeyPairSync('rsa', { modulusLength: 2048 })
    : generateKeyPairSync('ed25519')
  ).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

/** Our outbound address as the outside world sees it (the sink judges SPF for it). */
const OUR_OUTBOUND_IP = '192.0.2.10';
const srsSecret = randomBytes(24).toString('base64');
const ourRsa = pem('rsa');
const ourEd = pem('ed25519');
const senderKey = pem('rsa');

const txt: Record<string, string> = {
  'sender.test': 'v=spf1 ip4:127.0.0.1 -all',
  '_dmarc.sender.test': 'v=DMARC1; p=reject',
  'example.org': 'v=spf1 ip4:127.0.0.1 ip4:192.0.2.10 -all',
  '_dmarc.example.org': 'v=DMARC1; p=reject',
  'srs.example.org': `v=spf1 ip4:${OUR_OUTBOUND_IP} -all`,
  's1._domainkey.sender.test': dkimTxtRecord(
    loadDkimKey({ domain: 'sender.test', selector: 's1', privateKey: senderKey, active: true }, 'sender'),
  ),
  'r1._domainkey.example.org': dkimTxtRecord(
    loadDkimKey({ domain: 'example.org', selector: 'r1', privateKey: ourRsa, active: true }, 'r1'),
  ),
  'e1._domainkey.example.org': dkimTxtRecord(
    loadDkimKey({ domain: 'example.org', selector: 'e1', privateKey: ourEd, active: true }, 'e1'),
  ),
};

let pipeline: Pipeline;
let sink: SmtpSink;
let port: number;
let lookup: (name: string, type: string) => Promise<unknown>;
const srs = new Srs({ domain: 'srs.example.org', secrets: [srsSecret] });

before(async () => {
  const records: DnsRecord[] = Object.entries(txt).map(([name, data]) => ({ name, type: 'TXT', data }));
  pipeline = await startPipeline('e2e-forwarding', records, (sink) => ({
    domains: { primary: 'example.org', aliases: ['example.com'] },
    routing: {
      aliases: { 'info@example.org': ['alice@example.org'] },
      forwards: { 'alice@example.org': ['alice@forward.test'] },
    },
    // The outside world: forward.test (the forward's target) and sender.test (where bounces return).
    transports: {
      'forward.test': { host: '127.0.0.1', port: sink.port },
      'sender.test': { host: '127.0.0.1', port: sink.port },
    },
    srs: { secrets: [srsSecret] },
    dkim: {
      keys: [
        { domain: 'example.org', selector: 'r1', privateKey: ourRsa },
        { domain: 'example.org', selector: 'e1', privateKey: ourEd },
      ],
    },
  }));
  ({ sink, port } = pipeline);
  lookup = lookupVia(pipeline.dns);
});

after(async () => {
  await pipeline?.stop();
});

const message = (from: string, subject: string): Buffer =>
  plainTextMessage(from, 'info@example.org', subject);

const haveDkimpy = existsSync(DKIMPY_PYTHON) && existsSync('/usr/lib/python3/dist-packages/dkim');

describe('forwarding outside and signing', () => {
  let srsAddress = '';

  test('a forward gets an SRS sender, an ARC seal, and keeps the original DKIM signature valid', async () => {
    const subject = `forwarded ${randomBytes(4).toString('hex')}`;
    const plain = message('Sender <sender@sender.test>', subject);
    const signed = await dkimSign(plain, {
      canonicalization: 'relaxed/relaxed',
      signatureData: [{ signingDomain: 'sender.test', selector: 's1', privateKey: senderKey }],
    } as Parameters<typeof dkimSign>[1]);
    assert.deepEqual(signed.errors, [], 'the sender signed');
    const raw = Buffer.concat([Buffer.from(signed.signatures), plain]);
    await sendMail({ port, from: 'sender@sender.test', to: ['info@example.org'], raw });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.deepEqual(got.rcptTo, ['alice@forward.test']);

    // The envelope sender is ours, and reverses to the original.
    assert.match(got.mailFrom, /^SRS0=[^=]{4}=[A-Z2-7]{2}=sender\.test=sender@srs\.example\.org$/);
    assert.deepEqual(srs.reverse(got.mailFrom), { ok: true, address: 'sender@sender.test', form: 'SRS0' });
    srsAddress = got.mailFrom;

    // SPF as the next hop sees it from our outbound address: the SRS sender passes, the original would fail.
    const spfOf = async (sender: string) =>
      (await spf({
        sender,
        ip: OUR_OUTBOUND_IP,
        helo: 'mx.example.org',
        mta: 'mx.gmail.test',
        resolver: lookup,
      } as never)) as {
        status: { result: string };
      };
    assert.equal((await spfOf(got.mailFrom)).status.result, 'pass');
    assert.equal((await spfOf('sender@sender.test')).status.result, 'fail');

    // ARC and the original DKIM signature, judged by mailauth at the "receiver".
    const res = (await authenticate(got.raw, {
      ip: OUR_OUTBOUND_IP,
      helo: 'mx.example.org',
      sender: got.mailFrom,
      mta: 'mx.gmail.test',
      resolver: lookup,
      disableBimi: true,
    } as never)) as unknown as {
      arc: { status: { result: string }; i: number };
      dkim: { results: Array<{ signingDomain: string; status: { result: string } }> };
      dmarc: { status: { result: string } };
    };
    assert.equal(res.arc.status.result, 'pass');
    assert.equal(res.arc.i, 1);
    assert.deepEqual(
      res.dkim.results.map((r) => [r.signingDomain, r.status.result]),
      [['sender.test', 'pass']],
    );
    assert.equal(res.dmarc.status.result, 'pass', 'DMARC passes on the original DKIM signature');
    const text = got.raw.toString();
    assert.match(text, /^ARC-Seal: i=1; a=rsa-sha256; .*cv=none/s);
    assert.match(text, /ARC-Authentication-Results: i=1; mx\.example\.org;/);

    if (haveDkimpy) {
      const verdict = await dkimpyVerify(got.raw, txt);
      assert.equal(verdict.arc.cv, 'pass', verdict.arc.comment);
      assert.deepEqual(
        verdict.dkim.map((d) => d.ok),
        [true],
      );
    }
  });

  test('mail with our From arrives with rsa-sha256 and ed25519-sha256 signatures of example.org', async () => {
    const subject = `ours ${randomBytes(4).toString('hex')}`;
    await sendMail({
      port,
      from: 'carol@example.org',
      to: ['info@example.org'],
      raw: message('Carol <carol@example.org>', subject),
    });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.equal(got.mailFrom, 'carol@example.org', 'our own sender is not rewritten');
    const res = (await authenticate(got.raw, {
      ip: OUR_OUTBOUND_IP,
      helo: 'mx.example.org',
      sender: got.mailFrom,
      mta: 'mx.gmail.test',
      resolver: lookup,
      disableBimi: true,
    } as never)) as unknown as {
      dkim: { results: Array<{ signingDomain: string; selector: string; status: { result: string } }> };
    };
    const ours = res.dkim.results.filter((r) => r.signingDomain === 'example.org');
    assert.deepEqual(ours.map((r) => [r.selector, r.status.result]).sort(), [
      ['e1', 'pass'],
      ['r1', 'pass'],
    ]);
    if (haveDkimpy) {
      const verdict = await dkimpyVerify(got.raw, txt);
      assert.ok(
        verdict.dkim.length >= 2 && verdict.dkim.slice(0, 2).every((d) => d.ok),
        JSON.stringify(verdict),
      );
    }
  });

  test('a bounce to the SRS address returns to the original sender', async () => {
    assert.ok(srsAddress, 'the forward test ran first');
    const subject = `bounce ${randomBytes(4).toString('hex')}`;
    const dsn = Buffer.from(
      [
        'From: MAILER-DAEMON@forward.test',
        `To: ${srsAddress}`,
        `Subject: ${subject}`,
        `Date: ${new Date().toUTCString()}`,
        '',
        'Delivery failed.',
        '',
      ].join('\r\n'),
    );
    await sendMail({ port, from: '', to: [srsAddress], raw: dsn, helo: 'forward.test' });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.deepEqual(got.rcptTo, ['sender@sender.test']);
    assert.equal(got.mailFrom, '');
  });

  test("a sender that is another forwarder's SRS0 address leaves as SRS1 naming that forwarder", async () => {
    const subject = `srs1 ${randomBytes(4).toString('hex')}`;
    const upstream = 'SRS0=abcd=AB=orig.test=user@sender.test';
    await sendMail({
      port,
      from: upstream,
      to: ['info@example.org'],
      raw: message('U <user@orig.test>', subject),
    });
    const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
    assert.match(got.mailFrom, /^SRS1=[^=]{4}=sender\.test==abcd=AB=orig\.test=user@srs\.example\.org$/);
    assert.deepEqual(srs.reverse(got.mailFrom), { ok: true, address: upstream, form: 'SRS1' });
  });

  test('a bounce to an address postsrsd made with the same secret returns too (migration from Postfix)', {
    skip: !existsSync(POSTSRSD_BIN) && 'postsrsd not installed',
  }, async () => {
    const postsrsd = await startPostsrsd({ domain: 'srs.example.org', secrets: [srsSecret] });
    try {
      const theirs = await postsrsd.forward('dave@sender.test');
      assert.equal(theirs.code, 200);
      const subject = `postsrsd bounce ${randomBytes(4).toString('hex')}`;
      const dsn = `From: MAILER-DAEMON@forward.test\r\nTo: ${theirs.text}\r\nSubject: ${subject}\r\n\r\nfailed\r\n`;
      await sendMail({ port, from: '', to: [theirs.text], raw: dsn, helo: 'forward.test' });
      const got = await sink.waitFor((m) => m.raw.includes(Buffer.from(subject)), 20_000);
      assert.deepEqual(got.rcptTo, ['dave@sender.test']);
    } finally {
      await postsrsd.stop();
    }
  });

  test('refused at RCPT: the SRS address from a non-null sender, a forged hash, an expired address', async () => {
    const made = srs.forward('sender@sender.test').address;
    const forged = made.replace(/^SRS0=(.)/, (_m, c: string) => `SRS0=${c === 'A' || c === 'a' ? 'B' : 'A'}`);
    const old = srs.forward('sender@sender.test', new Date(Date.now() - 30 * 86_400_000)).address;
    const rcpt = async (from: string, to: string) =>
      (
        await smtpConversation(port, ['EHLO client.test', `MAIL FROM:<${from}>`, `RCPT TO:<${to}>`, 'QUIT'])
      )[3]!;
    assert.match(await rcpt('spammer@elsewhere.test', made), /^550 5\.1\.1 /);
    assert.match(await rcpt('', forged), /^550 5\.1\.1 /);
    assert.match(await rcpt('', old), /^550 5\.1\.1 /);
    assert.match(await rcpt('', made), /^250 /);
  });
});
