/**
 * The ledger against a real nats-server, read and written through the bus'
 * reply inbox (kv-over-inbox.ts) with @nats-io/kv's semantics: a missing,
 * deleted or purged key reads as none and is written (over the marker); a
 * second outcome for a key already final is reported, not written over;
 * reads work again after a server restart; a stream refusing the write
 * fails it exactly as @nats-io/kv did (same error, still "full" for the
 * publish classification), and a held write waits it out. A write with a
 * hold outlasts a server crash (it is retried through the reconnect,
 * extending the part's ack deadline meanwhile).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { buckets, kvNames } from '@sluice/proto';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { ledgerKey } from './ledger.ts';
import { toPublishError } from './publish.ts';
import { connectTestBus, recordingLog } from './test-fixtures.ts';
import type { LedgerEntry } from './types.ts';

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

const entryAt = (reply: string): LedgerEntry => ({
  status: 'delivered',
  at: '2026-02-01T00:00:00.000Z',
  reply,
});

test('a key never written reads as none; put then get returns the entry', async () => {
  const key = ledgerKey('01FRESH-1', 'dave@example.net');
  assert.equal(await bus.ledgerGet(key), null);
  assert.equal(await bus.ledgerPut(key, entryAt('250 fresh')), null, 'written: nothing was there');
  assert.deepEqual(await bus.ledgerGet(key), entryAt('250 fresh'));
  // What @nats-io/kv reads in the bucket is the same value.
  const kv = await new Kvm(bus.js).open(buckets.deliveryLedger);
  assert.deepEqual((await kv.get(key))?.json(), entryAt('250 fresh'));
});

test('a deleted or purged key reads as none and a new outcome is written over its marker', async () => {
  const kv = await new Kvm(bus.js).open(buckets.deliveryLedger);
  for (const op of ['delete', 'purge'] as const) {
    const key = ledgerKey(`01MARKER-${op}`, 'erin@example.net');
    assert.equal(await bus.ledgerPut(key, entryAt('250 before')), null);
    await kv[op](key);
    assert.equal((await kv.get(key))?.operation, op === 'delete' ? 'DEL' : 'PURGE', 'a marker is stored');
    assert.equal(await bus.ledgerGet(key), null, `${op}d: no entry`);
    assert.equal(await bus.ledgerPut(key, entryAt('250 after')), null, `written over the ${op} marker`);
    assert.deepEqual(await bus.ledgerGet(key), entryAt('250 after'));
  }
});

test('reads fail while the server is down and work again after it restarted', async () => {
  const key = ledgerKey('01RESTART-1', 'frank@example.net');
  assert.equal(await bus.ledgerPut(key, entryAt('250 kept')), null);
  await nats.nodes[0]!.kill();
  try {
    await assert.rejects(bus.ledgerGet(key), /timeout/i, 'no answer while down');
  } finally {
    await nats.nodes[0]!.restart();
  }
  let read: LedgerEntry | null = null;
  await waitUntil(
    'the entry to read again after the restart',
    async () => {
      read = await bus.ledgerGet(key).catch(() => null);
      return read !== null;
    },
    { timeoutMs: 15_000 },
  );
  assert.deepEqual(read, entryAt('250 kept'));
  assert.equal(await bus.ledgerGet(ledgerKey('01RESTART-2', 'frank@example.net')), null);
});

test('a ledger stream refusing writes (full) fails a write as @nats-io/kv did; a held write waits for room', async () => {
  const jsm = await jetstreamManager(bus.nc);
  const stream = kvNames.stream(buckets.deliveryLedger);
  const before = (await jsm.streams.info(stream)).config;
  // Make the ledger refuse new keys the way a full stream does (discard new at its message limit).
  assert.equal(await bus.ledgerPut(ledgerKey('01FULL-0', 'gina@example.net'), entryAt('250 room')), null);
  const { state } = await jsm.streams.info(stream);
  await jsm.streams.update(stream, { discard: 'new', max_msgs: state.messages });
  try {
    const kv = await new Kvm(bus.js).open(buckets.deliveryLedger);
    const theirs = await kv
      .create(ledgerKey('01FULL-kv', 'gina@example.net'), new TextEncoder().encode('{}'))
      .then(
        () => null,
        (err: Error) => err,
      );
    const ours = await bus.ledgerPut(ledgerKey('01FULL-1', 'gina@example.net'), entryAt('250 full')).then(
      () => null,
      (err: Error) => err,
    );
    assert.ok(theirs && ours, 'both refused');
    assert.equal(ours.name, theirs.name);
    assert.equal(ours.message, theirs.message);
    assert.match(ours.message, /maximum messages/);
    assert.equal(toPublishError(ours, stream, 1000).full, true, 'classified as a full stream');

    const key = ledgerKey('01FULL-2', 'gina@example.net');
    let failures = 0;
    const writing = bus.ledgerPut(key, entryAt('250 held'), {
      hold: { working: () => {}, onRetry: () => failures++ },
    });
    await waitUntil('the held write to be refused', () => failures >= 2);
    await jsm.streams.update(stream, { discard: before.discard, max_msgs: before.max_msgs });
    assert.equal(await writing, null);
    assert.deepEqual(await bus.ledgerGet(key), entryAt('250 held'));
  } finally {
    await jsm.streams.update(stream, { discard: before.discard, max_msgs: before.max_msgs });
  }
});
