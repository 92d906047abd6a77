/**
 * DANE beyond the plain MX case, with real DNSSEC (Knot signs, Unbound
 * validates): MX hosts that are CNAME aliases (RFC 7672 §2.2.2: TLSA at
 * the expanded name first, then the original), a TLSA RRset that is itself
 * behind a CNAME (RFC 7671 §7), and a transport named by host name (RFC
 * 7672 §2.2.2: an SMTP server configured by local policy), reached at its
 * validated address. Sinks are real STARTTLS servers; deliveries go through
 * deliverPart against a real nats-server.
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type DnssecResolver, type SmtpSink, startDnssecResolver, startSmtpSink } from '@sluice/test-harness';
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
/** Transports are reached on their own port: their TLSA names it (_<port>._tcp.<host>). */
let relaySink: SmtpSink;
let wrongRelaySink: SmtpSink;

const BODY = Buffer.from('From: a@sender.test\r\nSubject: dane routes\r\n\r\nHello.\r\n');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

before(async () => {
  certs = createCertWorkshop('sluice-dane-routes-');
  ee = certs.selfSigned('ee', 'not-the-host-name');
  const hash = sha256(
    new X509Certificate(ee.cert).publicKey.export({ type: 'spki', format: 'der' }) as Buffer,
  );
  const wrong = 'ab'.repeat(32);
  relaySink = await startSmtpSink({ tls: ee });
  wrongRelaySink = await startSmtpSink({ tls: ee });
  dnssec = await startDnssecResolver([
    {
      name: 'routes.test',
      kind: 'signed',
      records: [
        // The MX host is an alias; TLSA at the expanded name (the alias has a wrong one: not used).
        'expanded MX 10 mx-alias',
        'mx-alias CNAME real-host',
        'real-host A 127.0.0.1',
        `_25._tcp.real-host TLSA 3 1 1 ${hash}`,
        `_25._tcp.mx-alias TLSA 3 1 1 ${wrong}`,
        // The MX host is an alias whose target has no TLSA: the original name's TLSA applies.
        'original MX 10 mx-orig',
        'mx-orig CNAME plain-host',
        'plain-host A 127.0.0.1',
        `_25._tcp.mx-orig TLSA 3 1 1 ${hash}`,
        // The TLSA RRset itself behind a CNAME (RFC 7671 §7): shared by several hosts.
        'shared MX 10 mx-shared',
        'mx-shared A 127.0.0.1',
        '_25._tcp.mx-shared CNAME tlsa-pool',
        `tlsa-pool TLSA 3 1 1 ${hash}`,
        // Transports by name.
        'relay A 127.0.0.1',
        `_${relaySink.port}._tcp.relay TLSA 3 1 1 ${hash}`,
        'badrelay A 127.0.0.1',
        `_${wrongRelaySink.port}._tcp.badrelay TLSA 3 1 1 ${wrong}`,
      ],
    },
  ]);
  bed = await startEgressTlsBed('dane-routes-test', dnssec.address);
});

after(async () => {
  await bed?.stop();
  await relaySink?.stop();
  await wrongRelaySink?.stop();
  await dnssec?.stop();
  certs?.remove();
});

describe('DANE behind CNAMEs (RFC 7672 §2.2.2, RFC 7671 §7)', () => {
  test('MX host alias: the TLSA of the expanded name authenticates the server', async () => {
    const s = await bed.sinkWith(ee);
    const { disposition, event } = await bed.attemptTo('expanded.routes.test', s, BODY);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'dane');
    assert.equal(s.messages[0]?.secure, true);
  });

  test('MX host alias whose target has no TLSA: the original name’s TLSA applies', async () => {
    const s = await bed.sinkWith(ee);
    const { disposition, event } = await bed.attemptTo('original.routes.test', s, BODY);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'dane');
  });

  test('TLSA RRset behind a CNAME: followed and validated as a whole', async () => {
    const s = await bed.sinkWith(ee);
    const { disposition, event } = await bed.attemptTo('shared.routes.test', s, BODY);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'dane');
  });
});

describe('DANE for a transport named by host name (RFC 7672 §2.2.2)', () => {
  const transport = (host: string, port: number) => ({
    kind: 'smtp' as const,
    name: host,
    host,
    port,
    lmtp: false,
  });

  test('secure address and matching TLSA at _<port>._tcp.<host>: delivered with DANE at the validated address', async () => {
    const { disposition, event } = await bed.attemptTo(
      'anything.test',
      relaySink,
      BODY,
      {},
      transport('relay.routes.test', relaySink.port),
    );
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'dane');
    assert.equal(relaySink.messages.length, 1);
    // The system resolver does not know relay.routes.test: only the validated address reached the sink.
    assert.equal(relaySink.messages[0]!.secure, true);
  });

  test('TLSA not matching: deferred, nothing sent', async () => {
    const { disposition, event } = await bed.attemptTo(
      'anything.test',
      wrongRelaySink,
      BODY,
      {},
      transport('badrelay.routes.test', wrongRelaySink.port),
    );
    assert.equal(disposition.kind, 'retry');
    assert.equal(wrongRelaySink.messages.length, 0);
    assert.match(event!.reply, /4\.7\.5 .*no TLSA record matches/);
  });
});
