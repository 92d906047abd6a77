/**
 * The timeline's event log on a real nats-server: events are stored without
 * the caller waiting for their PubAck, a bounded window of them waits for
 * PubAcks, and an event that is not stored (no stream, no PubAck in time) is
 * counted and logged, never thrown.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type SluiceEvent, streams, subjects } from '@sluice/proto';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { EventLog } from './event-log.ts';
import { NatsOperations } from './nats-operations.ts';
import { connectTestBus, encoder, envelopeFor, recordingLog } from './test-fixtures.ts';

let nats: NatsTestServer;
let bus: Bus;
/** A bare connection: the server has JetStream, but no Sluice stream captures the event subjects. */
let bare: NatsConnection;

before(async () => {
  nats = await startNats();
  bare = await connect({ servers: nats.url });
  bus = await connectTestBus([nats.url]);
});
after(async () => {
  await bus?.close();
  await bare?.close();
  await nats?.stop();
});

function rewritten(queueId: string): SluiceEvent {
  return {
    v: 1,
    kind: 'rewritten',
    queueId,
    at: new Date().toISOString(),
    stage: 'rewriter',
    instance: 'test',
    changes: [],
  };
}

const lost = (ops: NatsOperations, reason: string) =>
  ops.snapshot().eventsLost.find((l) => l.reason === reason)?.count ?? 0;

test('recordEvent returns before the PubAck; the event is stored and counted', async () => {
  const id = envelopeFor(encoder.encode('x')).id;
  const before = bus.operations.snapshot().operations.find((o) => o.kind === 'publish_event')?.count ?? 0;
  await bus.recordEvent(rewritten(id));
  const events = await waitUntil('the event to be stored', async () => {
    const got = await bus.readTimeline(id);
    return got.length > 0 ? got : undefined;
  });
  assert.deepEqual(
    events.map((e) => e.kind),
    ['rewritten'],
  );
  const after = bus.operations.snapshot().operations.find((o) => o.kind === 'publish_event');
  assert.deepEqual(after, { kind: 'publish_event', stage: 'rewriter', count: before + 1 });
  await bus.eventsSettled();
  assert.equal(lost(bus.operations, 'error') + lost(bus.operations, 'timeout'), 0);
});

test('events of one message recorded in one turn are one stored message; readTimeline flattens them in order', async () => {
  const jsm = await jetstreamManager(bus.nc);
  const storedFor = async (queueId: string) =>
    (await jsm.streams.info(streams.events.name, { subjects_filter: subjects.event(queueId) })).state
      .subjects?.[subjects.event(queueId)] ?? 0;
  const a = envelopeFor(encoder.encode('a')).id;
  const b = envelopeFor(encoder.encode('b')).id;
  const before = bus.operations.snapshot().operations.find((o) => o.kind === 'publish_event')?.count ?? 0;
  // One turn: two events of a, one of b (not awaited apart: as the resolver and the rewriter in one path).
  await Promise.all([
    bus.recordEvent({
      ...rewritten(a),
      stage: 'resolver',
      kind: 'resolved',
      recipient: 'x@example.org',
      targets: [],
      route: 'none',
      source: 'test',
    } as SluiceEvent),
    bus.recordEvent(rewritten(a)),
    bus.recordEvent(rewritten(b)),
  ]);
  await bus.eventsSettled();
  assert.equal(await storedFor(a), 1, "a's two events are one stored message");
  assert.equal(await storedFor(b), 1);
  assert.deepEqual(
    (await bus.readTimeline(a)).map((e) => e.kind),
    ['resolved', 'rewritten'],
  );
  const after = bus.operations
    .snapshot()
    .operations.find((o) => o.kind === 'publish_event' && o.stage === 'resolver');
  assert.ok(after, 'the batch is counted once, under the stage of its first event');
  assert.equal(
    bus.operations
      .snapshot()
      .operations.filter((o) => o.kind === 'publish_event')
      .reduce((n, o) => n + o.count, 0),
    before + 2,
  );
  // A later turn is a message of its own.
  await new Promise((r) => setImmediate(r));
  await bus.recordEvent(rewritten(a));
  await bus.eventsSettled();
  assert.equal(await storedFor(a), 2);
  assert.equal((await bus.readTimeline(a)).length, 3);
});

test('an event no stream takes is counted lost and logged, not thrown', async () => {
  const other = await startNats(); // JetStream, but no Sluice topology
  const nc = await connect({ servers: other.url });
  const ops = new NatsOperations();
  const log = recordingLog();
  const events = new EventLog(nc, log, ops, { timeoutMs: 5000 });
  try {
    await events.record(rewritten(envelopeFor(encoder.encode('x')).id));
    await events.settle();
    assert.equal(lost(ops, 'error'), 1);
    assert.ok(log.lines.some((l) => l.level === 'warn' && l.msg === 'timeline event lost'));
  } finally {
    events.close();
    await nc.close();
    await other.stop();
  }
});

test('a full window holds the next event until a slot frees; events without a PubAck time out as lost', async () => {
  // A subscriber that never answers stands in for a stream that does not acknowledge.
  const other = await startNats();
  const silent = await connect({ servers: other.url });
  silent.subscribe(subjects.event('*'));
  await silent.flush();
  const nc = await connect({ servers: other.url });
  const ops = new NatsOperations();
  const timeoutMs = 300;
  const events = new EventLog(nc, recordingLog(), ops, { timeoutMs, window: 2 });
  try {
    const t0 = performance.now();
    await events.record(rewritten(envelopeFor(encoder.encode('a')).id));
    await events.record(rewritten(envelopeFor(encoder.encode('b')).id));
    assert.equal(events.inFlight, 2);
    assert.ok(performance.now() - t0 < timeoutMs, 'two events fit the window without waiting');
    await events.record(rewritten(envelopeFor(encoder.encode('c')).id));
    assert.ok(performance.now() - t0 >= timeoutMs, 'the third waited for the first to time out');
    assert.ok(lost(ops, 'timeout') >= 1);
    await events.settle();
    assert.equal(lost(ops, 'timeout'), 3);
    assert.equal(events.inFlight, 0);
  } finally {
    events.close();
    await nc.close();
    await silent.close();
    await other.stop();
  }
});

test('an invalid queue id is refused before anything is sent', async () => {
  const ops = new NatsOperations();
  const events = new EventLog(bare, recordingLog(), ops, { timeoutMs: 1000 });
  await events.record({ ...rewritten('x'), queueId: 'bad.id.*' });
  assert.equal(lost(ops, 'error'), 1);
  assert.deepEqual(
    ops.snapshot().operations.filter((o) => o.kind === 'publish_event'),
    [],
  );
  events.close();
});

test('close() counts the events still unacknowledged as lost and releases a caller waiting for a slot', async () => {
  const other = await startNats();
  const silent = await connect({ servers: other.url });
  silent.subscribe(subjects.event('*'));
  await silent.flush();
  const nc = await connect({ servers: other.url });
  const ops = new NatsOperations();
  const events = new EventLog(nc, recordingLog(), ops, { timeoutMs: 60_000, window: 1 });
  try {
    await events.record(rewritten(envelopeFor(encoder.encode('a')).id));
    const waiting = events.record(rewritten(envelopeFor(encoder.encode('b')).id));
    events.close();
    await waiting; // released, not left hanging
    assert.equal(lost(ops, 'closed'), 2);
    assert.equal(events.inFlight, 0);
    await events.settle();
  } finally {
    await nc.close();
    await silent.close();
    await other.stop();
  }
});
