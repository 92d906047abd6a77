import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { dedupIds, parseEnvelope, sha256Hex } from '@sluice/proto';
import {
  buildEnvelope,
  mailFromOf,
  messageIdOf,
  type TransactionFacts,
  traceparentOf,
} from './envelope-builder.ts';

const body = Buffer.from('Subject: x\r\nMessage-ID:\r\n <abc@sender.test>\r\n\r\nhello\r\n');

function facts(overrides: Partial<TransactionFacts> = {}): TransactionFacts {
  return {
    queueId: '01JABCDEFGHJKMNPQRSTVWXYZ0',
    receivedAt: new Date('2026-05-05T10:00:00.000Z'),
    receivedBy: 'mx.example.org',
    instance: 'test-1',
    client: { ip: '192.0.2.1', port: 40000, helo: 'client.test' },
    mailFrom: 'sender@sender.test',
    mailParams: {
      SIZE: '1234',
      BODY: '8bitmime',
      SMTPUTF8: true,
      RET: 'hdrs',
      ENVID: 'env-1',
    },
    recipients: [
      {
        address: 'alice@example.org',
        original: 'Alice@Example.org',
        notify: ['FAILURE', 'DELAY'],
        orcpt: 'rfc822;a@b',
      },
      { address: 'bob@example.org', original: 'bob@example.org' },
    ],
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    ...overrides,
  };
}

describe('buildEnvelope', () => {
  test('a valid v1 envelope with the MAIL FROM and DSN parameters carried', () => {
    const env = parseEnvelope(buildEnvelope(facts()));
    assert.equal(env.source, 'mx');
    assert.deepEqual(env.mailFrom, {
      address: 'sender@sender.test',
      size: 1234,
      body: '8BITMIME',
      smtputf8: true,
      ret: 'HDRS',
      envid: 'env-1',
    });
    assert.deepEqual(env.recipients[0], {
      address: 'alice@example.org',
      original: 'Alice@Example.org',
      notify: ['FAILURE', 'DELAY'],
      orcpt: 'rfc822;a@b',
      status: 'pending',
    });
    assert.deepEqual(env.recipients[1], {
      address: 'bob@example.org',
      original: 'bob@example.org',
      status: 'pending',
    });
    assert.equal(env.trace?.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.deepEqual(env.hops, [{ stage: 'ingress', instance: 'test-1', at: '2026-05-05T10:00:00.000Z' }]);
    assert.deepEqual(env.prepend, []);
  });

  test('the null reverse-path and no parameters', () => {
    const env = parseEnvelope(buildEnvelope(facts({ mailFrom: '', mailParams: {}, traceparent: undefined })));
    assert.deepEqual(env.mailFrom, { address: '' });
    assert.equal(env.trace, undefined);
  });

  test('mailFromOf ignores values it cannot carry', () => {
    assert.deepEqual(mailFromOf('a@b', { SIZE: 'x', BODY: 'BINARYMIME', RET: 'ALL' }), { address: 'a@b' });
  });
});

describe('dedupIds.accepted (the ingress publish id)', () => {
  test('same sender, recipients, body and client: same id, whatever the queue id', () => {
    const a = buildEnvelope(facts());
    const b = buildEnvelope(facts({ queueId: '01JZZZZZZZZZZZZZZZZZZZZZZZ', receivedAt: new Date() }));
    assert.equal(dedupIds.accepted(a), dedupIds.accepted(b));
    assert.match(dedupIds.accepted(a), /^mx:[0-9a-f]{64}$/);
  });
  test('any difference gives another id', () => {
    const base = dedupIds.accepted(buildEnvelope(facts()));
    const other = Buffer.from('other body');
    for (const f of [
      facts({ mailFrom: 'x@sender.test' }),
      facts({ recipients: [{ address: 'alice@example.org', original: 'alice@example.org' }] }),
      facts({ client: { ip: '192.0.2.2', helo: 'client.test' } }),
      facts({ body: { kind: 'inline', size: other.length, sha256: sha256Hex(other) } }),
    ]) {
      assert.notEqual(dedupIds.accepted(buildEnvelope(f)), base);
    }
  });
});

describe('small helpers', () => {
  test('traceparentOf (W3C Trace Context, version 00); invalid contexts give none', () => {
    assert.equal(
      traceparentOf({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        traceFlags: 1,
      }),
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    );
    assert.equal(
      traceparentOf({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }),
      undefined,
    );
  });
  test('messageIdOf reads a folded Message-ID from the header section only', () => {
    assert.equal(messageIdOf(body), '<abc@sender.test>');
    assert.equal(messageIdOf(Buffer.from('Subject: x\r\n\r\nMessage-ID: <in-body@x>\r\n')), undefined);
  });
});
