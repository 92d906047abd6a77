/**
 * The verdict over real DKIM-signed messages, with SPF, DKIM and DMARC records
 * served by a real DNS server on loopback that the filter's resolver queries
 * over UDP/TCP (no mocked resolver).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type Envelope, newQueueId, sha256Hex } from '@sluice/proto';
import { HeaderFieldError } from '@sluice/smtp';
import { type DnsServer, startDnsServer } from '@sluice/test-harness';
import { dkimSign } from 'mailauth';
import { authenticationResultsHeader, describeAuthentication } from './authentication.ts';
import { createDnsResolver } from './dns-resolver.ts';
import { authenticationSource } from './message-source.ts';
import { computeVerdict } from './verdict.ts';
import { requestDeadline } from './verdict-handler.ts';

const AUTHSERV = 'mx.example.org';
let dns: DnsServer;
let privateKey: string;
let publicKeyB64: string;

before(async () => {
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  privateKey = keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  publicKeyB64 = keys.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
  dns = await startDnsServer([
    { name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' },
    // A 2048-bit key is longer than one 255-byte TXT string: the server splits it.
    { name: 'sel._domainkey.sender.test', type: 'TXT', data: `v=DKIM1; k=rsa; p=${publicKeyB64}` },
    { name: '_dmarc.sender.test', type: 'TXT', data: 'v=DMARC1; p=reject' },
  ]);
});

after(async () => {
  await dns?.stop();
});

function message(from = 'Alice <alice@sender.test>'): Buffer {
  return Buffer.from(
    [
      `From: ${from}`,
      'To: bob@example.org',
      'Subject: verdict test',
      'Date: Tue, 5 May 2026 10:00:00 +0000',
      'Message-ID: <verdict-test@sender.test>',
      '',
      'Hello Bob.',
      '',
    ].join('\r\n'),
  );
}

async function signed(msg: Buffer): Promise<Buffer> {
  const r = await dkimSign(msg, {
    signingDomain: 'sender.test',
    selector: 'sel',
    privateKey,
    signatureData: [{ signingDomain: 'sender.test', selector: 'sel', privateKey }],
  });
  assert.deepEqual(r.errors, []);
  assert.ok(r.signatures.startsWith('DKIM-Signature:'));
  return Buffer.concat([Buffer.from(r.signatures), msg]);
}

function envelope(body: Buffer, ip: string, mailFrom = 'alice@sender.test'): Envelope {
  return {
    v: 1,
    id: newQueueId(),
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: AUTHSERV,
    client: { ip, helo: 'client.sender.test' },
    mailFrom: { address: mailFrom },
    recipients: [{ address: 'bob@example.org', original: 'bob@example.org', status: 'pending' }],
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    prepend: [],
    hops: [],
  };
}

const deps = () => ({
  authservId: AUTHSERV,
  resolver: createDnsResolver({ servers: [dns.address], timeoutSeconds: 2 }),
});

describe('computeVerdict', () => {
  test('signed message from an SPF-permitted IP: spf, dkim and dmarc pass', async () => {
    const body = await signed(message());
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), body, deps());
    assert.equal(reply.verdict.action, 'accept');
    assert.equal(reply.verdict.score, 0);
    assert.equal(reply.auth?.spf, 'pass');
    assert.deepEqual(reply.auth?.dkim, [
      { domain: 'sender.test', result: 'pass', selector: 'sel', aligned: true },
    ]);
    assert.equal(reply.auth?.dmarc, 'pass');
    const names = reply.verdict.rules.map((r) => r.name);
    for (const n of ['AUTH_SPF_PASS', 'AUTH_DKIM_PASS', 'AUTH_DMARC_PASS']) assert.ok(names.includes(n), n);

    assert.equal(reply.prepend.length, 1);
    const ar = reply.prepend[0]!;
    assert.equal(ar.name, 'Authentication-Results');
    assert.match(ar.value, /^mx\.example\.org;\r\n\t/);
    assert.match(ar.value, /dkim=pass header\.i=@sender\.test/);
    assert.match(ar.value, /spf=pass .*smtp\.mailfrom=alice@sender\.test/);
    assert.match(ar.value, /dmarc=pass .*header\.from=sender\.test/);
    assert.doesNotMatch(ar.value, /\r\n(?![\t ])/, 'only folding line breaks');
    // The DKIM key went over TCP after a truncated UDP answer or fit in UDP; either way it was asked for.
    assert.ok(dns.queries.some((q) => q.name === 'sel._domainkey.sender.test'));
  });

  test('unsigned message from an IP the SPF record excludes: spf fail, dmarc fail (p=reject)', async () => {
    const body = message();
    const reply = await computeVerdict(envelope(body, '192.0.2.9'), body, deps());
    assert.equal(
      reply.verdict.action,
      'accept',
      'without a policy every weight is 0; the results are reported',
    );
    assert.equal(reply.auth?.spf, 'fail');
    assert.equal(reply.auth?.dmarc, 'fail');
    assert.deepEqual(reply.auth?.dkim, []);
    assert.match(reply.prepend[0]!.value, /spf=fail/);
    assert.match(reply.prepend[0]!.value, /dmarc=fail .*policy\.dmarc=reject/);
    assert.match(reply.prepend[0]!.value, /dkim=none/);
  });

  test('a signature over a modified body does not pass DKIM', async () => {
    const body = await signed(message());
    const tampered = Buffer.from(body.toString('utf8').replace('Hello Bob.', 'Hello Eve.'));
    const reply = await computeVerdict(envelope(tampered, '127.0.0.1'), tampered, deps());
    // mailauth's default (as Gmail): "neutral (body hash did not verify)"; strict mode would say fail.
    assert.equal(reply.auth?.dkim[0]?.result, 'neutral');
    assert.match(reply.prepend[0]!.value, /dkim=neutral \(body hash did not verify\)/);
    assert.equal(reply.auth?.spf, 'pass');
    assert.equal(reply.auth?.dmarc, 'pass', 'SPF alignment still passes DMARC');
  });

  test('a body given as a stream (a large body from the object store) is verified as it passes', async () => {
    const big = Buffer.from(
      message()
        .toString()
        .replace('Hello Bob.', `Hello Bob.\r\n${`${'b'.repeat(78)}\r\n`.repeat(40_000)}`),
    );
    const body = await signed(big);
    const chunks = Array.from({ length: Math.ceil(body.length / 65536) }, (_, i) =>
      body.subarray(i * 65536, (i + 1) * 65536),
    );
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), Readable.from(chunks), deps());
    assert.deepEqual(reply.auth?.dkim, [
      { domain: 'sender.test', result: 'pass', selector: 'sel', aligned: true },
    ]);
    assert.equal(reply.auth?.dmarc, 'pass');

    // The same through authenticationSource: signed, so the whole body streams (replayed head + rest).
    const source = await authenticationSource(Readable.from(chunks));
    assert.ok(source instanceof Readable, 'a signed message is streamed whole');
    const again = await computeVerdict(envelope(body, '127.0.0.1'), source, deps());
    assert.deepEqual(again.auth, reply.auth);
  });

  test('an unsigned large body: only the header section is read, with the same results as the whole', async () => {
    const big = Buffer.from(
      message()
        .toString()
        .replace('Hello Bob.', `Hello Bob.\r\n${`${'u'.repeat(78)}\r\n`.repeat(40_000)}`),
    );
    let chunksRead = 0;
    const chunks = Array.from({ length: Math.ceil(big.length / 65536) }, (_, i) =>
      big.subarray(i * 65536, (i + 1) * 65536),
    );
    const counted = Readable.from(
      (function* () {
        for (const c of chunks) {
          chunksRead++;
          yield c;
        }
      })(),
    );
    const source = await authenticationSource(counted);
    assert.ok(Buffer.isBuffer(source));
    assert.ok(source.toString().endsWith('Message-ID: <verdict-test@sender.test>\r\n\r\n'));
    assert.ok(chunksRead <= 2, `read ${chunksRead} of ${chunks.length} chunks`);
    const headersOnly = await computeVerdict(envelope(big, '127.0.0.1'), source, deps());
    const whole = await computeVerdict(envelope(big, '127.0.0.1'), big, deps());
    assert.deepEqual(headersOnly.auth, whole.auth);
    assert.equal(headersOnly.prepend[0]!.value, whole.prepend[0]!.value);
  });

  test('DNS that does not answer gives temperror results and tempfail, not a crash', async () => {
    const dead = await startDnsServer([]);
    await dead.stop(); // nothing listens on this port any more
    const body = await signed(message());
    const reply = await computeVerdict(envelope(body, '127.0.0.1'), body, {
      authservId: AUTHSERV,
      resolver: createDnsResolver({ servers: [dead.address], timeoutSeconds: 1 }),
    });
    assert.equal(reply.verdict.action, 'tempfail', 'temperror is never pass or fail: 451');
    assert.equal(reply.auth?.spf, 'temperror');
    assert.match(reply.prepend[0]!.value, /spf=temperror/);
  });
});

describe('describeAuthentication', () => {
  test('a From header DMARC cannot evaluate counts as dmarc=fail, never none', () => {
    const out = describeAuthentication(
      {
        dkim: { headerFrom: [], fromFields: 2, envelopeFrom: false, results: [] },
        spf: false,
        dmarc: false,
        arc: false,
        dmarcSkipReason: 'multiple-from-fields',
      },
      AUTHSERV,
    );
    assert.equal(out.summary.dmarc, 'fail');
    assert.match(out.header.value, /dmarc=fail reason="multiple-from-fields"/);
  });

  test('nothing to report gives "authserv-id; none" (RFC 8601 §2.2)', () => {
    const out = describeAuthentication(
      {
        dkim: { headerFrom: [], fromFields: 1, envelopeFrom: false, results: [] },
        spf: false,
        dmarc: false,
        arc: false,
      },
      AUTHSERV,
    );
    assert.equal(out.header.value, 'mx.example.org; none');
  });

  test('results are cleaned of line breaks; an authserv-id with one is refused when the header is built', () => {
    const header = authenticationResultsHeader(AUTHSERV, ['spf=pass\r\nX-Injected: 1', 'dkim=none']);
    assert.equal(header.value, 'mx.example.org;\r\n\tspf=pass X-Injected: 1;\r\n\tdkim=none');
    assert.throws(() => authenticationResultsHeader('mx.example.org\r\nX-Injected: 1', []), HeaderFieldError);
  });
});

describe('requestDeadline', () => {
  test('reads the Sluice-Deadline header; absent or garbled means no limit', () => {
    assert.equal(requestDeadline({ 'Sluice-Deadline': '1780000000000' }), 1780000000000);
    assert.equal(requestDeadline({}), Number.POSITIVE_INFINITY);
    assert.equal(requestDeadline({ 'Sluice-Deadline': 'soon' }), Number.POSITIVE_INFINITY);
  });
});
