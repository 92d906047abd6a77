/**
 * The ledger write path after a remote 250, against a real nats-server: a
 * write with a hold outlasts a server crash (it is retried through the
 * reconnect, extending the part's ack deadline meanwhile), and a second
 * outcome for a key already final is reported, not written over.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { ledgerKey } from './ledger.ts';
import { connectTestBus, recordingLog } from './test-fixtures.ts';

let nats: NatsTestServer;
let bus: Bus;

before(async () => {
  nats = await startNats();
  bus = await connectTestBus([nats.url], { publishTimeoutMs: 2000, ackWaitMs: 600 }, recordingLog());
});
after(async () => {
  await bus?.close();
  await nats?.stop();
});

test('a held ledger write waits out a server crash and lands once the server is back', async () => {
  const key = ledgerKey('01HELDPART-1', 'alice@example.net');
  const entry = { status: 'delivered' as const, at: new Date().toISOString(), reply: '250 2.0.0 Ok' };
  await nats.nodes[0]!.kill();
  let working = 0;
  let failures = 0;
  const writing = bus.ledgerPut(key, entry, {
    hold: { working: () => working++, onRetry: () => failures++ },
  });
  await waitUntil('the write to fail while the server is down', () => failures >= 2, { timeoutMs: 10_000 });
  await nats.nodes[0]!.restart();
  assert.equal(await writing, null, 'our entry is the one stored');
  assert.ok(working >= 2, `the part was kept claimed while waiting (${working} extensions)`);
  assert.deepEqual(await bus.ledgerGet(key), entry);
});

test('without a hold the first failure is thrown (callers that may retry later)', async () => {
  await nats.nodes[0]!.kill();
  try {
    await assert.rejects(
      bus.ledgerPut(ledgerKey('01UNHELD-1', 'bob@example.net'), {
        status: 'delivered',
        at: new Date().toISOString(),
        reply: '250 ok',
      }),
    );
  } finally {
    await nats.nodes[0]!.restart();
  }
});

test('a second final outcome for the same key is reported and the first one kept', async () => {
  const key = ledgerKey('01TWICE-1', 'carol@example.net');
  const first = { status: 'delivered' as const, at: '2026-01-01T00:00:00.000Z', reply: '250 first' };
  const second = { status: 'delivered' as const, at: '2026-01-01T00:00:05.000Z', reply: '250 second' };
  assert.equal(await bus.ledgerPut(key, first), null);
  // Our own write again (its acknowledgement lost): not a repeat.
  assert.equal(await bus.ledgerPut(key, first), null);
  assert.deepEqual(await bus.ledgerPut(key, second), first, 'another attempt had delivered it first');
  assert.deepEqual(await bus.ledgerGet(key), first);
});
