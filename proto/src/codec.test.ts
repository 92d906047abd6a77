import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEnvelope, encodeEnvelope, sha256Hex } from './codec.ts';
import {
  checkEnvelopeShape,
  type Envelope,
  EnvelopeValidationError,
  envelopeKey,
  parseEnvelope,
} from './envelope.ts';
import { newQueueId, queueIdTime } from './queue-id.ts';

function sample(body: Uint8Array): Envelope {
  return parseEnvelope({
    v: 1,
    id: newQueueId(),
    receivedAt: new Date().toISOString(),
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.example' },
    mailFrom: { address: 'a@example.net', body: '8BITMIME' },
    recipients: [{ address: 'b@example.org', original: 'b@example.org' }],
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
  });
}

test('codec - an envelope with an 8-bit inline body round-trips byte for byte', () => {
  const body = Buffer.from('Subject: caf\xe9\r\n\r\n\x00\xff binary ok\r\n', 'latin1');
  const env = sample(body);
  const decoded = decodeEnvelope(encodeEnvelope(env, body));
  assert.deepEqual(decoded.envelope, env);
  assert.ok(Buffer.from(decoded.body!).equals(body));
  assert.equal(decoded.envelope.recipients[0]!.status, 'pending', 'defaults applied');
  assert.deepEqual(decoded.envelope.prepend, []);
});

test('codec - a truncated or altered body is refused with a specific reason', () => {
  const body = Buffer.from('hello');
  const wire = Buffer.from(encodeEnvelope(sample(body), body));
  assert.throws(
    () => decodeEnvelope(wire.subarray(0, wire.length - 1)),
    /inline body is 4 bytes but the envelope declares 5/,
  );
  const altered = Buffer.from(wire);
  altered[altered.length - 1] = 0x21;
  assert.throws(() => decodeEnvelope(altered), /sha256 does not match/);
  assert.throws(() => decodeEnvelope(Buffer.from('{"v":1}')), EnvelopeValidationError);
});

test('envelope - CR/LF in addresses and headers is refused (no injection downstream)', () => {
  const env = sample(Buffer.from('x'));
  assert.throws(
    () => parseEnvelope({ ...env, mailFrom: { address: 'a@b\r\nRCPT TO:<x@y>' } }),
    /mailFrom.address: address must not contain CR, LF or NUL/,
  );
  assert.throws(
    () => parseEnvelope({ ...env, prepend: [{ name: 'X-Test', value: 'a\nb', addedBy: 't' }] }),
    /bare CR or LF/,
  );
  // A folded header value (CRLF + WSP) is fine.
  parseEnvelope({ ...env, prepend: [{ name: 'X-Test', value: 'a\r\n\tb', addedBy: 't' }] });
  assert.throws(() => parseEnvelope({ ...env, recipients: [] }), /recipients/);
});

test('envelope - the object-store variant carries no inline bytes', () => {
  const env = parseEnvelope({
    ...sample(Buffer.from('x')),
    body: { kind: 'object', bucket: 'b', key: 'k', size: 20_000_000, sha256: 'a'.repeat(64) },
  });
  assert.equal(decodeEnvelope(encodeEnvelope(env)).body, undefined);
  assert.throws(() => encodeEnvelope(env, Buffer.from('x')), /object-store body but body bytes/);
  assert.equal(envelopeKey(env), env.id);
  assert.equal(envelopeKey({ ...env, partId: `${env.id}-2` }), `${env.id}-2`);
});

test('queue ids - sortable by time, unique, subject-safe', () => {
  const t = Date.UTC(2026, 10, 23, 3, 0, 0);
  const a = newQueueId(t);
  const b = newQueueId(t + 1);
  assert.match(a, /^[0-9A-Z]{26}$/);
  assert.ok(a < b);
  assert.equal(queueIdTime(a), t);
  const many = new Set(Array.from({ length: 10_000 }, () => newQueueId(t)));
  assert.equal(many.size, 10_000);
});

test('envelope - unknown fields survive parsing and the wire at every level (readers keep, writers spread)', () => {
  const body = Buffer.from('x');
  const env = sample(body);
  const future = {
    ...env,
    fromTheFuture: { nested: [1, 2] },
    client: { ...env.client, futureClient: true, tls: { protocol: 'TLSv1.3', cipher: 'X', futureTls: 'y' } },
    mailFrom: { ...env.mailFrom, futureSender: 'srs-v2' },
    recipients: [{ ...env.recipients[0]!, futureRecipient: { a: 1 } }],
    body: { ...env.body, futureBody: 7 },
    prepend: [{ name: 'X-Test', value: 'v', addedBy: 'test', futureHeader: 1 }],
    hops: [{ stage: 'ingress', instance: 'i', at: env.receivedAt, futureHop: 'h' }],
  };
  const parsed = parseEnvelope(future);
  assert.deepEqual(parsed, future);
  const decoded = decodeEnvelope(encodeEnvelope(parsed, body)).envelope;
  assert.deepEqual(decoded, future);
  assert.deepEqual(decoded['fromTheFuture'], { nested: [1, 2] });
  assert.equal(decoded.recipients[0]!['futureRecipient'] !== undefined, true);
});

test('envelope - the optional fields of the next issues validate, and refuse nonsense', () => {
  const env = sample(Buffer.from('x'));
  const full = parseEnvelope({
    ...env,
    client: {
      ...env.client,
      auth: { user: 'alice', method: 'PLAIN' },
      tls: {
        protocol: 'TLSv1.3',
        cipher: 'TLS_AES_256_GCM_SHA384',
        clientCertificate: { subject: 'CN=relay1.example.org', fingerprintSha256: 'ab'.repeat(32) },
      },
    },
    mailFrom: {
      ...env.mailFrom,
      address: 'SRS0=HHH=TT=example.net=a@example.org',
      original: 'a@example.net',
    },
    recipients: [
      {
        ...env.recipients[0]!,
        forwardOwner: 'alice@example.org',
        delivery: {
          action: 'delayed',
          remoteMta: 'mx1.example.net:25',
          attempts: 3,
          dsnSent: true,
          tls: 'dane',
        },
      },
    ],
    auth: {
      spf: 'pass',
      dkim: [{ domain: 'example.net', selector: 's1', result: 'pass', aligned: true }],
      dmarc: 'pass',
      arc: 'pass',
      dmarcDetail: { domain: 'example.net', result: 'pass', policy: 'reject', disposition: 'none' },
      arcChain: { result: 'pass', instances: 2 },
    },
  });
  assert.equal(full.recipients[0]!.delivery?.tls, 'dane');
  assert.equal(full.mailFrom.original, 'a@example.net');
  const bad = (patch: object) =>
    assert.throws(() => parseEnvelope({ ...env, ...patch }), EnvelopeValidationError);
  bad({ recipients: [{ ...env.recipients[0]!, delivery: { action: 'bounced' } }] });
  bad({ recipients: [{ ...env.recipients[0]!, delivery: { tls: 'starttls' } }] });
  bad({ mailFrom: { ...env.mailFrom, original: 'a@example.net\r\nRCPT TO:<x>' } });
  bad({
    auth: { spf: 'pass', dkim: [], dmarc: 'pass', arc: 'none', arcChain: { result: 'pass', instances: -1 } },
  });
});

test('codec - the publish-side shape check refuses what cannot be routed and leaves the rest to the decoder', () => {
  const body = Buffer.from('hello');
  const env = sample(body);
  assert.doesNotThrow(() => checkEnvelopeShape(env));
  const refused = (patch: object, reason: RegExp) =>
    assert.throws(() => checkEnvelopeShape({ ...env, ...patch } as Envelope), reason);
  refused({ recipients: [] }, /recipients/);
  refused({ recipients: [{ original: 'x@example.org' }] }, /recipients/);
  refused({ v: 2 }, /v: must be 1/);
  refused({ id: '' }, /id/);
  refused({ body: { kind: 'elsewhere' } }, /body\.kind/);
  // A CR in an address passes the shape check but not the full schema, which the next stage's decode runs.
  const smuggled = { ...env, mailFrom: { ...env.mailFrom, address: 'a@example.net\r\nRCPT TO:<x>' } };
  assert.doesNotThrow(() => checkEnvelopeShape(smuggled));
  assert.throws(() => decodeEnvelope(encodeEnvelope(smuggled, body)), /mailFrom\.address/);
});
