/**
 * MTA-STS (RFC 8461) end to end: the _mta-sts TXT records and MX hosts in a
 * real zone (Knot behind Unbound, test/harness dnssec-resolver.ts, unsigned
 * here so DANE does not apply), the policies on a real HTTPS server on
 * loopback with a test CA, the MX hosts real SMTP sinks with STARTTLS, the
 * policy cache in the real JetStream KV bucket.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type DnssecResolver, type SmtpSink, startDnssecResolver } from '@sluice/test-harness';
import { mxMatches, parsePolicy, parseStsTxt } from './mta-sts-policy.ts';
import { createMtaStsSource } from './mta-sts-source.ts';
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
let https: Server;
let ca: Buffer;
let mxCert: KeyAndCert;
let selfSigned: KeyAndCert;
const fetches: string[] = [];

const POLICIES: Record<string, string> = {
  'mta-sts.enforce.sts.test':
    'version: STSv1\r\nmode: enforce\r\nmx: mx.enforce.sts.test\r\nmax_age: 86400\r\n',
  'mta-sts.badcert.sts.test': 'version: STSv1\nmode: enforce\nmx: *.badcert.sts.test\nmax_age: 86400\n',
  'mta-sts.nomatch.sts.test': 'version: STSv1\nmode: enforce\nmx: *.elsewhere.test\nmax_age: 86400\n',
  'mta-sts.testing.sts.test': 'version: STSv1\nmode: testing\nmx: *.elsewhere.test\nmax_age: 86400\n',
};

before(async () => {
  certs = createCertWorkshop('sluice-mta-sts-');
  ca = certs.createCa('Sluice MTA-STS test CA');
  const web = certs.issue('web', Object.keys(POLICIES));
  mxCert = certs.issue('mx', ['mx.enforce.sts.test', 'mx.nomatch.sts.test', 'mx.testing.sts.test']);
  selfSigned = certs.selfSigned('self', 'mx.badcert.sts.test');

  https = createServer(web, (req, res) => {
    const host = String(req.headers.host ?? '').replace(/:\d+$/, '');
    fetches.push(host);
    const policy = POLICIES[host];
    if (req.url !== '/.well-known/mta-sts.txt' || !policy) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(policy);
  });
  await new Promise<void>((resolve) => https.listen(0, '127.0.0.1', resolve));
  const policyPort = (https.address() as AddressInfo).port;

  const domain = (label: string) => [
    `${label} MX 10 mx.${label}`,
    `mx.${label} A 127.0.0.1`,
    `mta-sts.${label} A 127.0.0.1`,
    `_mta-sts.${label} TXT "v=STSv1; id=20261130a;"`,
  ];
  dnssec = await startDnssecResolver([
    {
      name: 'sts.test',
      kind: 'unsigned',
      records: [...domain('enforce'), ...domain('badcert'), ...domain('nomatch'), ...domain('testing')],
    },
  ]);
  bed = await startEgressTlsBed('mta-sts-test', dnssec.address);
  bed.deps = {
    ...bed.deps,
    mtaSts: createMtaStsSource({
      dns: bed.secureDns,
      store: bed.bus,
      ca,
      port: policyPort,
      fetchTimeoutMs: 2000,
    }),
    tlsCa: ca,
  };
});

after(async () => {
  await bed?.stop();
  await dnssec?.stop();
  await new Promise((r) => https?.close(r));
  certs?.remove();
});

const BODY = Buffer.from('Subject: sts\r\n\r\nHello.\r\n');
const sinkWith = (tls?: KeyAndCert): Promise<SmtpSink> => bed.sinkWith(tls);
const attemptTo = (domain: string, s: SmtpSink) => bed.attemptTo(domain, s, BODY);
const tlsResults = () => bed.tlsResults();

describe('MTA-STS delivery', () => {
  test('enforce, MX matches, PKIX-valid certificate: delivered with outcome "mta-sts"; the policy is cached', async () => {
    const s = await sinkWith(mxCert);
    const { disposition, event } = await attemptTo('enforce.sts.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(s.messages[0]?.secure, true);
    assert.equal(event?.tls, 'mta-sts');
    const cached = JSON.parse(new TextDecoder().decode((await bed.bus.mtaStsPolicyGet('enforce.sts.test'))!));
    assert.equal(cached.id, '20261130a');
    assert.equal(cached.mode, 'enforce');
    assert.equal(cached.expiresAt - cached.fetchedAt, 86_400_000);
    // Same TXT id, policy unexpired: served from the KV cache, not fetched again (RFC 8461 §5.1).
    const before = fetches.filter((h) => h === 'mta-sts.enforce.sts.test').length;
    const again = await attemptTo('enforce.sts.test', s);
    assert.equal(again.event?.tls, 'mta-sts');
    assert.equal(fetches.filter((h) => h === 'mta-sts.enforce.sts.test').length, before);
    assert.equal(before, 1);
  });

  test('enforce, MX not matching the policy: deferred, nothing sent', async () => {
    const s = await sinkWith(mxCert);
    const { disposition, event } = await attemptTo('nomatch.sts.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.match(event!.reply, /not an MX allowed by the MTA-STS policy of nomatch\.sts\.test/);
    assert.ok((await tlsResults()).some((r) => r.startsWith('mta-sts/validation-failure=')));
  });

  test('enforce, MX not matching, but the message says TLS-Required: No (RFC 8689 §4.2.2): delivered, the failure counted', async () => {
    const s = await sinkWith(mxCert);
    const before = (await tlsResults()).find((r) => r.startsWith('mta-sts/validation-failure='));
    const optional = Buffer.from('TLS-Required: No\r\nSubject: sts\r\n\r\nHello.\r\n');
    const { disposition, event } = await bed.attemptTo('nomatch.sts.test', s, optional);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(s.messages.length, 1);
    assert.equal(event?.tls, 'tls');
    const after = (await tlsResults()).find((r) => r.startsWith('mta-sts/validation-failure='));
    assert.notEqual(after, before, 'the policy failure still counts for TLS-RPT');
  });

  test('enforce, certificate not PKIX-valid: deferred, nothing sent', async () => {
    const s = await sinkWith(selfSigned);
    const { disposition, event } = await attemptTo('badcert.sts.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.match(event!.reply, /^451 4\.7\.5 .*TLS authentication failed/);
    assert.ok((await tlsResults()).some((r) => r.startsWith('mta-sts/certificate-not-trusted=')));
  });

  test('enforce, STARTTLS not offered: deferred, never cleartext', async () => {
    const s = await sinkWith(undefined);
    const { disposition, event } = await attemptTo('enforce.sts.test', s);
    assert.equal(disposition.kind, 'retry');
    assert.equal(s.messages.length, 0);
    assert.match(event!.reply, /4\.7\.10 /);
  });

  test('testing, MX not matching: delivered as usual (outcome "tls"), the failure recorded', async () => {
    const s = await sinkWith(mxCert);
    const { disposition, event } = await attemptTo('testing.sts.test', s);
    assert.deepEqual(disposition, { kind: 'ack' });
    assert.equal(event?.tls, 'tls');
    assert.ok((await tlsResults()).some((r) => r.startsWith('mta-sts/validation-failure=')));
  });
});

describe('MTA-STS policy and TXT parsing (RFC 8461 §3.1, §3.2, §4.1)', () => {
  test('TXT: exactly one v=STSv1 record with an id', () => {
    assert.equal(parseStsTxt(['v=STSv1; id=abc123;']), 'abc123');
    assert.equal(parseStsTxt(['v=spf1 -all', 'v=STSv1; id=x1']), 'x1');
    assert.equal(parseStsTxt(['v=STSv1; id=a;', 'v=STSv1; id=b;']), undefined);
    assert.equal(parseStsTxt(['v=STSv1; id=not-alnum!;']), undefined);
    assert.equal(parseStsTxt([]), undefined);
  });

  test('policy: fields, max_age capped, bad ones refused', () => {
    assert.deepEqual(
      parsePolicy(
        'version: STSv1\nmode: testing\nmx: A.example.\nmx: *.b.example\nmax_age: 99999999\nx: y\n',
      ),
      {
        mode: 'testing',
        mx: ['a.example', '*.b.example'],
        maxAge: 31_557_600,
      },
    );
    assert.throws(() => parsePolicy('version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n'), /STSv1/);
    assert.throws(() => parsePolicy('version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n'), /mode/);
    assert.throws(() => parsePolicy('version: STSv1\nmode: enforce\nmax_age: 1\n'), /no mx/);
    assert.throws(() => parsePolicy('version: STSv1\nmode: enforce\nmx: a\n'), /max_age/);
  });

  test('mx wildcards match exactly one leftmost label', () => {
    const p = { mx: ['*.example.com', 'mail.example.net'] };
    assert.equal(mxMatches(p, 'mx1.example.com'), true);
    assert.equal(mxMatches(p, 'MX1.Example.COM.'), true);
    assert.equal(mxMatches(p, 'example.com'), false);
    assert.equal(mxMatches(p, 'a.b.example.com'), false);
    assert.equal(mxMatches(p, 'mail.example.net'), true);
    assert.equal(mxMatches(p, 'x.mail.example.net'), false);
  });
});
