/**
 * REQUIRETLS and TLS-Required: No (RFC 8689) end to end with real DNSSEC
 * (Knot signs, Unbound validates: test/harness dnssec-resolver.ts), real
 * STARTTLS sinks (smtp-server, which advertises REQUIRETLS under TLS unless
 * told not to) and one delivery attempt through deliverPart against a real
 * nats-server. A failed REQUIRETLS message must never reach a sink, and its
 * DSN (queued on the resolve stream) must itself ask for REQUIRETLS (§5).
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { decodeEnvelope, streams, subjects } from '@sluice/proto';
import { type DnssecResolver, startDnssecResolver } from '@sluice/test-harness';
import {
  type CertWorkshop,
  createCertWorkshop,
  type EgressTlsBed,
  type KeyAndCert,
  startEgressTlsBed,
} from './tls-test-bed.ts';

let dnssec: DnssecResolver;
let bed: EgressTlsBed;
let certs: CertWorkshop;
let ee: KeyAndCert;
let caPem: Buffer;

const BODY = Buffer.from('From: a@sender.test\r\nSubject: requiretls\r\n\r\nSecret.\r\n');
const OPTIONAL = Buffer.from(
  'From: a@sender.test\r\nTLS-Required: No\r\nSubject: optional\r\n\r\nHello.\r\n',
);
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const spki = (pem: Buffer) =>
  new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }) as Buffer;
const issued = (name: string, san: string): KeyAndCert => {
  const leaf = certs.issue(name, [san]);
  return { key: leaf.key, cert: Buffer.concat([leaf.cert, caPem]) };
};

before(async () => {
  certs = createCertWorkshop('sluice-requiretls-');
  ee = certs.selfSigned('ee', 'not-the-mx-name');
  caPem = certs.createCa('Sluice REQUIRETLS test CA');
  const eeHash = sha256(spki(ee.cert));
  const mx = (label: string) => [`${label} MX 10 mx-${label}`, `mx-${label} A 127.0.0.1`];
  dnssec = await startDnssecResolver([
    {
      name: 'rtls.test',
      kind: 'signed',
      records: [
        ...mx('dane'),
        `_25._tcp.mx-dane TLSA 3 1 1 ${eeHash}`,
        ...mx('wrong'),
        `_25._tcp.mx-wrong TLSA 3 1 1 ${'ab'.repeat(32)}`,
        // Secure MX, no TLSA: REQUIRETLS falls to PKIX for the MX name (RFC 8689 §4.2.1).
        ...mx('pkix'),
      ],
    },
    { name: 'rtls-plain.test', kind: 'unsigned', records: ['@ MX 10 mx', 'mx A 127.0.0.1'] },
  ]);
  bed = await startEgressTlsBed('requiretls-test', dnssec.address);
  // The test CA is a PKIX trust anchor here (egress.mtaSts.caFile in production).
  bed.deps = { ...bed.deps, tlsCa: caPem };
});

after(async () => {
  await bed?.stop();
  await dnssec?.stop();
  certs?.remove();
});

/** The last DSN queued on the resolve stream. */
async function lastDsn() {
  const jsm = await jetstreamManager(bed.bus.nc);
  const m = await jsm.streams.getMessage(streams.resolve.name, { last_by_subj: subjects.resolve });
  assert.ok(m, 'a DSN was queued');
  const { envelope, body } = decodeEnvelope(m.data);
  assert.ok(body, 'the DSN body is inline (small)');
  return { envelope, text: Buffer.from(body).toString() };
}

describe('REQUIRETLS (RFC 8689 §4.2.1)', () => {
  test('DANE-authenticated next hop offering REQUIRETLS: delivered with MAIL FROM ... REQUIRETLS', async () => {
    const s = await bed.sinkWith(ee);
    const { disposition, event } = await bed.attemptTo('dane.rtls.test', s, BODY, { requireTls: true });
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(s.messages.length, 1);
    assert.equal(s.messages[0]!.secure, true);
    assert.equal(s.messages[0]!.mailParams.REQUIRETLS, true);
    assert.equal(event?.tls, 'dane');
  });

  test('secure MX without TLSA: PKIX for the MX name, delivered with REQUIRETLS', async () => {
    const s = await bed.sinkWith(issued('pkix', 'mx-pkix.rtls.test'));
    const { disposition } = await bed.attemptTo('pkix.rtls.test', s, BODY, { requireTls: true });
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(s.messages[0]?.mailParams.REQUIRETLS, true);
  });

  test('next hop without REQUIRETLS: failed 5.7.30, nothing sent, the DSN itself asks for REQUIRETLS (§5)', async () => {
    const s = await bed.sinkWith(ee, { hideRequireTls: true });
    const { disposition, event, envelope } = await bed.attemptTo('dane.rtls.test', s, BODY, {
      requireTls: true,
    });
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'failed');
    assert.match(event!.reply, /^550 5\.7\.30 .*REQUIRETLS support required/);
    const dsn = await lastDsn();
    assert.equal(dsn.envelope.mailFrom.address, '');
    assert.equal(dsn.envelope.mailFrom.requireTls, true);
    assert.equal(dsn.envelope.recipients[0]?.address, 'sender@example.org');
    assert.match(dsn.text, /Status: 5\.7\.30/);
    assert.ok(dsn.text.includes(envelope.id));
  });

  test('certificate not PKIX-valid for a secure MX without TLSA: failed 5.7.10, nothing sent', async () => {
    const s = await bed.sinkWith(certs.selfSigned('selfpkix', 'mx-pkix.rtls.test'));
    const { event } = await bed.attemptTo('pkix.rtls.test', s, BODY, { requireTls: true });
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'failed');
    assert.match(event!.reply, /^550 5\.7\.10 .*REQUIRETLS/);
  });

  test('no STARTTLS at the next hop: failed 5.7.10, never sent in cleartext', async () => {
    const s = await bed.sinkWith();
    const { event } = await bed.attemptTo('dane.rtls.test', s, BODY, { requireTls: true });
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'failed');
    assert.match(event!.reply, /^550 5\.7\.10 /);
  });

  test('MX not DNSSEC-validated and no MTA-STS: the host name is not authentic, failed 5.7.10 without sending', async () => {
    const s = await bed.sinkWith(issued('plain', 'mx.rtls-plain.test'));
    const { event } = await bed.attemptTo('rtls-plain.test', s, BODY, { requireTls: true });
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'failed');
    assert.match(event!.reply, /^550 5\.7\.10 .*not an MX validated by DNSSEC or MTA-STS/);
  });

  test('REQUIRETLS wins over a TLS-Required: No header (§4.1): wrong TLSA fails the message', async () => {
    const s = await bed.sinkWith(ee);
    const { event } = await bed.attemptTo('wrong.rtls.test', s, OPTIONAL, { requireTls: true });
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'failed');
    assert.match(event!.reply, /^550 5\.7\.10 /);
  });
});

describe('TLS-Required: No (RFC 8689 §4.2.2)', () => {
  test('TLSA mismatch: without the header deferred, with it delivered over opportunistic TLS', async () => {
    const s = await bed.sinkWith(ee);
    const plain = await bed.attemptTo('wrong.rtls.test', s, BODY);
    assert.equal(plain.disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    const optional = await bed.attemptTo('wrong.rtls.test', s, OPTIONAL);
    assert.deepEqual(optional.disposition, { kind: 'ack' });
    assert.equal(s.messages.length, 1);
    assert.equal(s.messages[0]!.secure, true, 'TLS is still used where offered');
    assert.equal(optional.event?.tls, 'tls');
    assert.ok((await bed.tlsResults()).some((r) => r.startsWith('dane/validation-failure=')));
  });
});
