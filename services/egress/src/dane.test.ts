/**
 * DANE (RFC 7672) end to end with real DNSSEC: Knot DNS signs the test zones,
 * Unbound validates them (test/harness dnssec-resolver.ts), and the egress
 * reads Unbound's AD bit through @sluice/dns. The MX hosts are real SMTP
 * sinks with STARTTLS and openssl-made certificates; deliveries go through
 * deliverPart against a real nats-server (ledger, bodies, timeline).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Bus, EnvelopeDelivery } from '@sluice/bus';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { createSecureDns } from '@sluice/dns';
import { type Envelope, newQueueId, parseEnvelope, partIdOf, type SluiceEvent } from '@sluice/proto';
import {
  type DnssecResolver,
  type NatsTestServer,
  type SmtpSink,
  startDnssecResolver,
  startNats,
  startServiceContext,
  startSmtpSink,
} from '@sluice/test-harness';
import { verifyDaneChain } from './dane-verify.ts';
import { deliverPart, type EgressDeps } from './deliver.ts';
import { createDnsLookup } from './destination.ts';
import { SessionPool } from './session-pool.ts';
import { SmtpSession } from './smtp-session.ts';

let nats: NatsTestServer;
let dnssec: DnssecResolver;
let bus: Bus;
let config: SluiceConfig;
let deps: EgressDeps;
let events: SluiceEvent[];
let dir: string;
const toStop: Array<() => Promise<void>> = [];

/** A self-signed leaf for DANE-EE (its name is deliberately NOT the MX name), and a CA-issued one for DANE-TA. */
let ee: { key: Buffer; cert: Buffer };
let ta: { key: Buffer; cert: Buffer };
let taOtherName: { key: Buffer; cert: Buffer };
let caDer: Buffer;

const BODY = Buffer.from('From: a@sender.test\r\nSubject: dane\r\n\r\nHello.\r\n');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const spki = (pem: Buffer) =>
  new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' }) as Buffer;

function openssl(args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function leafSignedByCa(name: string, san: string): { key: Buffer; cert: Buffer } {
  writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:${san}\n`);
  openssl([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    `/CN=${san}`,
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
  ]);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
    ].concat(['-extfile', `${name}.ext`, '-out', `${name}.pem`]),
  );
  const leaf = readFileSync(join(dir, `${name}.pem`));
  // The server sends its chain: leaf, then the CA (the DANE-TA trust anchor).
  return {
    key: readFileSync(join(dir, `${name}.key`)),
    cert: Buffer.concat([leaf, readFileSync(join(dir, 'ca.pem'))]),
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-dane-'));
  openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=not-the-mx-name',
    '-keyout',
    'ee.key',
    '-out',
    'ee.pem',
  ]);
  ee = { key: readFileSync(join(dir, 'ee.key')), cert: readFileSync(join(dir, 'ee.pem')) };
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=Sluice DANE test CA',
    ].concat(['-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', 'ca.key', '-out', 'ca.pem']),
  );
  caDer = new X509Certificate(readFileSync(join(dir, 'ca.pem'))).raw;
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
  nats = await startNats();
  config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      egress: {
        retrySchedule: [0.2],
        connectTimeout: 2,
        greetingTimeout: 5,
        socketTimeout: 10,
        dnsResolver: dnssec.address,
      },
      bus: { queueLifetime: 86400, maxDeliver: 500_000 },
      // MX and address lookups through the validating resolver too.
      dns: { servers: [dnssec.address], timeout: 2 },
      log: { level: 'warn' },
    },
    'dane-test',
  );
  const started = await startServiceContext(config, 'dane-test');
  ({ bus, events } = started);
  deps = {
    ...started.ctx,
    dns: createDnsLookup(config.dns),
    secureDns: createSecureDns({ resolver: dnssec.address, timeoutMs: 2000 }),
  };
});

after(async () => {
  for (const stop of toStop.reverse()) await stop();
  await bus?.close();
  await nats?.stop();
  await dnssec?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function sinkWith(tls?: { key: Buffer; cert: Buffer }): Promise<SmtpSink> {
  const s = await startSmtpSink(tls ? { tls } : {});
  toStop.push(() => s.stop());
  return s;
}

async function attemptTo(domain: string, s: SmtpSink) {
  const id = newQueueId();
  const stored = await bus.storeBody(id, BODY);
  const rcpt = `user@${domain}`;
  const envelope: Envelope = parseEnvelope({
    v: 1,
    id,
    partId: partIdOf(id, `mx:${domain}`, [rcpt]),
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'sender@example.org' },
    recipients: [{ address: rcpt, original: rcpt }],
    route: { kind: 'mx', domain },
    body: stored.ref,
    prepend: [],
  });
  const d: EnvelopeDelivery = {
    envelope,
    inlineBody: stored.inline,
    deliveryCount: 1,
    streamSeq: 0,
    working: () => {},
  };
  const disposition = await deliverPart(d, { ...deps, mxPort: s.port });
  const event = events.find(
    (e): e is Extract<SluiceEvent, { kind: 'delivery' }> =>
      e.kind === 'delivery' && e.partId === envelope.partId,
  );
  return { disposition, event };
}

const tlsResults = async () =>
  (await deps.metrics.tlsResults.get()).values.map((v) => `${v.labels.policy}/${v.labels.result}=${v.value}`);

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
    toStop.push(async () => pool.close());
    const s = await sinkWith(ee);
    const withPool = { ...deps, sessions: pool };
    const saved = deps;
    deps = withPool;
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
      deps = saved;
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
