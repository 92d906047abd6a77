/**
 * DANE (RFC 7672) end to end with real DNSSEC: Knot DNS signs the test zones,
 * Unbound validates them (test/harness dnssec-resolver.ts), and the egress
 * reads Unbound's AD bit through @sluice/dns. The MX hosts are real SMTP
 * sinks with STARTTLS and openssl-made certificates; deliveries go through
 * deliverPart against a real nats-server (ledger, bodies, timeline).
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createSecureDns } from '@sluice/dns';
import { type DnssecResolver, type SmtpSink, startDnssecResolver } from '@sluice/test-harness';
import { verifyDaneChain } from './dane-verify.ts';
import { SessionPool } from './session-pool.ts';
import { SmtpSession } from './smtp-session.ts';
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

/** A self-signed leaf for DANE-EE (its name is deliberately NOT the MX name), and a CA-issued one for DANE-TA. */
let ee: KeyAndCert;
let ta: KeyAndCert;
let taOtherName: KeyAndCert;
let caPem: Buffer;
let caDer: Buffer;

const BODY = Buffer.from('From: a@sender.test\r\nSubject: dane\r\n\r\nHello.\r\n');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const spki = (pem: Buffer) =>
  new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }) as Buffer;

function leafSignedByCa(name: string, san: string): KeyAndCert {
  const leaf = certs.issue(name, [san]);
  // The server sends its chain: leaf, then the CA (the DANE-TA trust anchor).
  return { key: leaf.key, cert: Buffer.concat([leaf.cert, caPem]) };
}

before(async () => {
  certs = createCertWorkshop('sluice-dane-');
  ee = certs.selfSigned('ee', 'not-the-mx-name');
  caPem = certs.createCa('Sluice DANE test CA');
  caDer = new X509Certificate(caPem).raw;
  ta = leafSignedByCa('ta', 'mx-ta.dane.test');
  taOtherName = leafSignedByCa('taother', 'somewhere-else.test');

  const eeHash = sha256(spki(ee.cert));
  const mx = (label: string) => [`${label} MX 10 mx-${label}`, `mx-${label} A 127.0.0.1`];
  dnssec = await startDnssecResolver([
    {
      name: 'dane.test',
      kind: 'signed',
      records: [
        ...mx('good'),
        `_25._tcp.mx-good TLSA 3 1 1 ${eeHash}`,
        ...mx('wrong'),
        `_25._tcp.mx-wrong TLSA 3 1 1 ${'ab'.repeat(32)}`,
        ...mx('strip'),
        `_25._tcp.mx-strip TLSA 3 1 1 ${eeHash}`,
        ...mx('ta'),
        `_25._tcp.mx-ta TLSA 2 0 1 ${sha256(caDer)}`,
        ...mx('taname'),
        `_25._tcp.mx-taname TLSA 2 0 1 ${sha256(caDer)}`,
        ...mx('pkix'),
        `_25._tcp.mx-pkix TLSA 1 1 1 ${'cd'.repeat(32)}`,
        ...mx('none'),
      ],
    },
    {
      name: 'bogus.test',
      kind: 'bogus',
      records: ['@ MX 10 mx', 'mx A 127.0.0.1', `_25._tcp.mx TLSA 3 1 1 ${eeHash}`],
    },
    {
      name: 'plain.test',
      kind: 'unsigned',
      records: ['@ MX 10 mx', 'mx A 127.0.0.1', `_25._tcp.mx TLSA 3 1 1 ${'ab'.repeat(32)}`],
    },
  ]);
  // Egress with MX and address lookups through the validating resolver too.
  bed = await startEgressTlsBed('dane-test', dnssec.address);
});

after(async () => {
  await bed?.stop();
  await dnssec?.stop();
  certs?.remove();
});

const sinkWith = (tls?: KeyAndCert): Promise<SmtpSink> => bed.sinkWith(tls);
const attemptTo = (domain: string, s: SmtpSink) => bed.attemptTo(domain, s, BODY);
const tlsResults = () => bed.tlsResults();

describe('DANE with a DNSSEC-validating resolver (knot + unbound)', () => {
  test('matching DANE-EE 3 1 1: delivered over TLS, outcome "dane", though the certificate names another host', async () => {
    const s = await sinkWith(ee);
    const { disposition, event } = await attemptTo('good.dane.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(s.messages.length, 1);
    assert.equal(s.messages[0]!.secure, true);
    assert.equal(event?.outcome, 'delivered');
    assert.equal(event?.tls, 'dane');
    assert.ok((await tlsResults()).includes('dane/success=1'), String(await tlsResults()));
  });

  test('TLSA not matching the certificate: deferred, nothing sent', async () => {
    const s = await sinkWith(ee);
    const { disposition, event } = await attemptTo('wrong.dane.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'deferred');
    assert.match(event!.reply, /4\.7\.5 .*TLS authentication failed.*no TLSA record matches/);
  });

  test('STARTTLS stripped (the MX offers none) with TLSA published: deferred, never cleartext', async () => {
    const s = await sinkWith(undefined);
    const { disposition, event } = await attemptTo('strip.dane.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.match(event!.reply, /4\.7\.10 /);
    assert.ok((await tlsResults()).some((r) => r.startsWith('dane/starttls-not-supported=')));
  });

  test('DANE-TA 2 0 1: chain to the published CA and the MX name in the certificate: delivered', async () => {
    const s = await sinkWith(ta);
    const { disposition, event } = await attemptTo('ta.dane.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'dane');
  });

  test('DANE-TA with a certificate for another name: deferred (RFC 7672 §3.2.2 name check)', async () => {
    const s = await sinkWith(taOtherName);
    const { disposition, event } = await attemptTo('taname.dane.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.match(event!.reply, /not for mx-taname\.dane\.test or taname\.dane\.test/);
  });

  test('only unusable TLSA (PKIX-EE): TLS mandatory but unauthenticated, outcome "tls"', async () => {
    const s = await sinkWith(ee);
    const { disposition, event } = await attemptTo('pkix.dane.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'tls');
    const stripped = await sinkWith(undefined);
    const second = await attemptTo('pkix.dane.test', stripped);
    assert.equal(second.disposition.kind, 'retry');
    assert.equal(stripped.messages.length, 0);
  });

  test('bogus signatures (validator answers SERVFAIL): deferred, nothing sent', async () => {
    const s = await sinkWith(ee);
    const { disposition, event } = await attemptTo('bogus.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.equal(event?.outcome, 'deferred');
  });

  test('secure zone without TLSA: opportunistic TLS, outcome "tls"', async () => {
    const s = await sinkWith(ee);
    const { disposition, event } = await attemptTo('none.dane.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'tls');
  });

  test('insecure (unsigned) zone: its TLSA is ignored, opportunistic TLS, outcome "tls"', async () => {
    const s = await sinkWith(ee);
    const { disposition, event } = await attemptTo('plain.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'tls');
  });
});

describe('DANE with the session pool', () => {
  test('a DANE session is reused for the next message (outcome still "dane"), and pooled per TLS policy', async () => {
    let opened = 0;
    const pool = new SessionPool({ maxPerDestination: 2, idleTimeoutMs: 5000 }, (c, o) => {
      opened++;
      return SmtpSession.open(c, o);
    });
    bed.onStop(async () => pool.close());
    const s = await sinkWith(ee);
    const saved = bed.deps;
    bed.deps = { ...saved, sessions: pool };
    try {
      const first = await attemptTo('good.dane.test', s);
      const second = await attemptTo('good.dane.test', s);
      assert.deepEqual([first.event?.tls, second.event?.tls], ['dane', 'dane']);
      assert.equal(opened, 1);
      assert.equal(s.messages.length, 2);
      // The same host under another policy (e.g. opportunistic, before its TLSA was published) is
      // another pool destination: an unauthenticated session never serves a DANE delivery.
      const candidate = {
        host: '127.0.0.1',
        port: s.port,
        servername: 'mx-good.dane.test',
        lmtp: false,
        label: 'x',
      };
      const base = {
        heloName: 'mx.example.org',
        connectTimeoutMs: 1,
        greetingTimeoutMs: 1,
        socketTimeoutMs: 1,
      };
      const opportunistic = { ...base, requireTls: true, ignoreTlsErrors: true, policyKey: 'dane-unusable' };
      const dane = { ...opportunistic, policyKey: `dane:3 1 1 ${sha256(spki(ee.cert))}` };
      assert.equal(pool.stats(candidate, dane).idle, 1);
      assert.equal(pool.stats(candidate, opportunistic).idle, 0);
    } finally {
      bed.deps = saved;
    }
  });
});

describe('@sluice/dns against the validating resolver', () => {
  test('AD on a signed answer, none on an unsigned one, SERVFAIL on a bogus one', async () => {
    const dns = createSecureDns({ resolver: dnssec.address, timeoutMs: 2000 });
    const good = await dns.tlsa('_25._tcp.mx-good.dane.test');
    assert.equal(good.rcode, 'noerror');
    assert.equal(good.secure, true);
    assert.deepEqual(
      good.records.map((r) => [r.usage, r.selector, r.matchingType, r.data.toString('hex')]),
      [[3, 1, 1, sha256(spki(ee.cert))]],
    );
    const plain = await dns.mx('plain.test');
    assert.deepEqual(
      [plain.rcode, plain.secure, plain.records],
      ['noerror', false, [{ exchange: 'mx.plain.test', priority: 10 }]],
    );
    assert.equal((await dns.mx('bogus.test')).rcode, 'servfail');
    const missing = await dns.tlsa('_25._tcp.nope.dane.test');
    assert.deepEqual([missing.rcode, missing.secure], ['nxdomain', true]);
  });

  test('no answer within the timeout: rcode timeout, not an empty answer', async () => {
    const dns = createSecureDns({ resolver: '127.0.0.1:9', timeoutMs: 200 });
    const a = await dns.mx('good.dane.test');
    assert.ok(a.rcode === 'timeout' || a.rcode === 'error', a.rcode);
    assert.equal(a.secure, false);
  });
});

describe('dane-verify without a network', () => {
  test('DANE-EE matches by SPKI (1 1) and full certificate SHA-512 (3 0 2); a different key does not', () => {
    const leaf = new X509Certificate(ee.cert);
    const sha512 = createHash('sha512').update(leaf.raw).digest();
    assert.equal(
      verifyDaneChain([leaf], undefined, {
        tlsa: [{ usage: 3, selector: 0, matchingType: 2, data: sha512 }],
        names: [],
      }),
      undefined,
    );
    assert.equal(
      verifyDaneChain([leaf], undefined, {
        tlsa: [{ usage: 3, selector: 1, matchingType: 0, data: spki(ee.cert) }],
        names: [],
      }),
      undefined,
    );
    const other = new X509Certificate(ta.cert);
    assert.match(
      String(
        verifyDaneChain([other], undefined, {
          tlsa: [{ usage: 3, selector: 1, matchingType: 0, data: spki(ee.cert) }],
          names: [],
        }),
      ),
      /no TLSA record matches/,
    );
  });

  test('DANE-TA refuses a leaf the anchor did not sign, even if the anchor is in the chain', () => {
    const ca = new X509Certificate(caDer);
    const leaf = new X509Certificate(ee.cert); // self-signed, not by the CA
    const r = verifyDaneChain([leaf, ca], undefined, {
      tlsa: [{ usage: 2, selector: 0, matchingType: 1, data: Buffer.from(sha256(caDer), 'hex') }],
      names: ['mx-ta.dane.test'],
    });
    assert.match(String(r), /not signed by the DANE-TA/);
  });
});
