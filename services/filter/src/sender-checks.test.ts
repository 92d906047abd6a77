/**
 * checkSender (sender-checks.ts) gives what mailauth's authenticate() with
 * BIMI off gives, over the same real DNS server on loopback and real
 * signatures: DKIM pass, fail and partial body, aligned and not, strict DKIM
 * alignment, SPF pass/fail/none and HELO-only, DMARC pass/fail through the
 * tree walk, unevaluable authors, and an ARC chain. Both results go through
 * describeAuthentication too, and that is what the filter's verdict reads.
 * A mailauth upgrade that changes authenticate() fails here.
 */
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type DnsServer, startDnsServer } from '@sluice/test-harness';
import { authenticate, sealMessage } from 'mailauth';
import { describeAuthentication } from './authentication.ts';
import { createDnsResolver } from './dns-resolver.ts';
import { checkSender, type SenderCheckOptions } from './sender-checks.ts';
import { message, sign, type TestKey, testKey } from './test-messages.ts';

const AUTHSERV = 'mx.example.org';
const FOREIGN_IP = '192.0.2.9';
let dns: DnsServer;
let sender: TestKey;
let list: TestKey;
let walk: TestKey;
let strict: TestKey;
let strictSub: TestKey;

before(async () => {
  sender = testKey('sender.test', 'sel');
  list = testKey('list.test', 'sel2');
  walk = testKey('walk.test', 'w1');
  strict = testKey('strict.test', 's1');
  strictSub = testKey('sub.strict.test', 's2');
  dns = await startDnsServer([
    sender.record,
    list.record,
    walk.record,
    strict.record,
    strictSub.record,
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: '_dmarc.sender.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
    { name: 'list.test', type: 'TXT', data: 'v=spf1 -all' },
    { name: 'walk.test', type: 'TXT', data: 'v=spf1 -all' },
    { name: '_dmarc.walk.test', type: 'TXT', data: 'v=DMARC1; p=reject; np=quarantine' },
    { name: 'mail.walk.test', type: 'A', data: '192.0.2.80' },
    { name: 'strict.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    { name: '_dmarc.strict.test', type: 'TXT', data: 'v=DMARC1; p=quarantine; adkim=s; aspf=s' },
    { name: 'helo.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
  ]);
});

after(async () => {
  await dns?.stop();
});

async function both(body: Buffer, opts: Omit<SenderCheckOptions, 'resolver' | 'mta'>) {
  const resolver = createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 });
  const options = { ...opts, mta: AUTHSERV, resolver };
  const ours = await checkSender(body, options);
  const theirs = await authenticate(body, { ...options, disableBimi: true });
  return { ours, theirs };
}

/**
 * The results the filter reads, as plain data (no undefined). Not compared: the ARC result's
 * authResults, authenticate()'s own Authentication-Results text, which it keeps there for sealing
 * (the filter writes its own header and does not seal).
 */
function picked(r: Awaited<ReturnType<typeof checkSender>>) {
  const arc = r.arc ? { ...r.arc, authResults: undefined } : r.arc;
  return JSON.parse(
    JSON.stringify({ dkim: r.dkim, spf: r.spf, dmarc: r.dmarc, arc, dmarcSkipReason: r.dmarcSkipReason }),
  );
}

async function assertSame(body: Buffer, opts: Omit<SenderCheckOptions, 'resolver' | 'mta'>) {
  const { ours, theirs } = await both(body, opts);
  assert.deepEqual(picked(ours), picked(theirs));
  assert.deepEqual(describeAuthentication(ours, AUTHSERV), describeAuthentication(theirs, AUTHSERV));
  return describeAuthentication(ours, AUTHSERV).summary;
}

describe('checkSender equals authenticate() with BIMI off', () => {
  test('aligned signatures and SPF pass: dmarc pass', async () => {
    const body = await sign(message(), [sender, list]);
    const s = await assertSame(body, {
      ip: '127.0.0.1',
      helo: 'client.sender.test',
      sender: 'a@sender.test',
    });
    assert.equal(s.dmarc, 'pass');
    assert.deepEqual(
      s.dkim.map((d) => [d.domain, d.result, d.aligned]),
      [
        ['sender.test', 'pass', true],
        ['list.test', 'pass', false],
      ],
    );
  });

  test('a foreign signature from a foreign IP: dkim pass unaligned, spf fail, dmarc fail', async () => {
    const body = await sign(message(), [list]);
    const s = await assertSame(body, { ip: FOREIGN_IP, helo: 'x.list.test', sender: 'x@list.test' });
    assert.equal(s.dmarc, 'fail');
    assert.equal(s.spf, 'fail');
  });

  test('a broken signature (body changed after signing) and no SPF record for the HELO', async () => {
    const signed = await sign(message(), [sender]);
    const body = Buffer.from(signed.toString('latin1').replace('Hello Bob.', 'Hello Eve.'), 'latin1');
    const s = await assertSame(body, { ip: FOREIGN_IP, helo: 'nowhere.test', sender: 'a@sender.test' });
    assert.equal(s.dkim[0]?.result, 'neutral', 'the body hash does not verify (RFC 6376 §3.7)');
  });

  test('an l= signature covering part of the body', async () => {
    const body = await sign(message({ body: 'Short.\r\nAnd more text.\r\n' }), [sender], {
      maxBodyLength: 8,
    });
    await assertSame(body, { ip: '127.0.0.1', helo: 'client.sender.test', sender: 'a@sender.test' });
  });

  test('tree walk: a subdomain author aligns with the Organizational Domain', async () => {
    const body = await sign(message({ from: 'a@mail.walk.test' }), [walk]);
    const s = await assertSame(body, { ip: FOREIGN_IP, helo: 'c.other.invalid', sender: 'a@other.invalid' });
    assert.equal(s.dmarc, 'pass');
  });

  test('strict DKIM alignment: a subdomain signature neither passes DMARC nor counts as aligned', async () => {
    const signed = await sign(message({ from: 'a@strict.test' }), [strictSub, strict]);
    // The strict.test signature broken, the sub.strict.test one valid but not strictly aligned.
    const body = Buffer.from(
      signed
        .toString('latin1')
        .replace(/(d=strict\.test;[\s\S]*?b=)([A-Za-z0-9+/])/, (_m, a, c) => `${a}${c === 'A' ? 'B' : 'A'}`),
      'latin1',
    );
    const s = await assertSame(body, { ip: FOREIGN_IP, helo: 'c.other.invalid', sender: 'a@other.invalid' });
    assert.equal(s.dmarc, 'fail');
    assert.deepEqual(
      s.dkim.map((d) => [d.domain, d.result, d.aligned]),
      [
        ['sub.strict.test', 'pass', false],
        ['strict.test', 'fail', true],
      ],
      'a pass takes the DMARC verdict, a failure the strict mode',
    );
  });

  test('the null reverse-path and an IP-literal HELO: SPF checks the HELO identity', async () => {
    const body = message();
    await assertSame(body, { ip: '127.0.0.1', helo: 'helo.test', sender: '' });
    await assertSame(body, { ip: '127.0.0.1', helo: '127.0.0.1', sender: '' });
    await assertSame(body, { ip: '127.0.0.1', helo: '', sender: 'a@sender.test' });
  });

  test('two From fields: dmarc cannot evaluate, with the reason', async () => {
    const body = message({ headers: ['From: mallory@evil.test'] });
    const { ours } = await both(body, { ip: FOREIGN_IP, helo: 'x.evil.test', sender: 'm@evil.test' });
    assert.equal(ours.dmarc, false);
    assert.equal(ours.dmarcSkipReason, 'multiple-from-fields');
    await assertSame(body, { ip: FOREIGN_IP, helo: 'x.evil.test', sender: 'm@evil.test' });
  });

  test('an ARC chain sealed by a list that changed the message', async () => {
    const original = await sign(message(), [sender]);
    const modified = Buffer.from(
      original.toString('latin1').replace('Subject: filter test', 'Subject: [list] filter test'),
      'latin1',
    );
    const seal = await sealMessage(modified, {
      signingDomain: list.domain,
      selector: list.selector,
      privateKey: list.privateKey,
      cv: 'none',
      authResults: 'list.test; dkim=pass header.d=sender.test; spf=pass smtp.mailfrom=sender.test',
    });
    const body = Buffer.concat([seal, modified]);
    const s = await assertSame(body, { ip: FOREIGN_IP, helo: 'mail.list.test', sender: 'bounces@list.test' });
    assert.equal(s.arc, 'pass');
  });

  test('a stream as input gives the same as the buffer', async () => {
    const body = await sign(message(), [sender]);
    const resolver = createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 });
    const opts = {
      ip: '127.0.0.1',
      helo: 'client.sender.test',
      sender: 'a@sender.test',
      mta: AUTHSERV,
      resolver,
    };
    const fromStream = await checkSender(Readable.from([body.subarray(0, 100), body.subarray(100)]), opts);
    const fromBuffer = await checkSender(body, opts);
    assert.deepEqual(picked(fromStream), picked(fromBuffer));
  });
});
