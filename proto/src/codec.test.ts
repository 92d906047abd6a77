import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeEnvelope, encodeEnvelope, sha256Hex } from './codec.ts';
import { type Envelope, EnvelopeValidationError, envelopeKey, parseEnvelope } from './envelope.ts';
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
