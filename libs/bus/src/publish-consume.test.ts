import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { consumers, type Envelope, eventSchema, headerNames, streams, subjects } from '@sluice/proto';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { connectTestBus, encoder, envelopeFor, recordingLog } from './test-fixtures.ts';
import { BusPublishError, type EnvelopeDelivery } from './types.ts';

let nats: NatsTestServer;
let bus: Bus;
let jsm: JetStreamManager;

before(async () => {
  nats = await startNats();
  bus = await connectTestBus([nats.url], { maxDeliver: 3 });
  jsm = await jetstreamManager(bus.nc);
});
afterEach(async () => {
  for (const s of Object.values(streams)) await jsm.streams.purge(s.name);
});
after(async () => {
  await bus?.close();
  await nats?.stop();
});

async function messagesIn(stream: string): Promise<number> {
  return (await jsm.streams.info(stream)).state.messages;
}

async function lastDeadLetter(stage: Parameters<typeof subjects.dead>[0]) {
  return jsm.streams.getMessage(streams.dead.name, { last_by_subj: subjects.dead(stage) });
}

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

test('publish then consume: the envelope and inline body arrive validated, ack empties the work queue', async () => {
  const body = encoder.encode('Subject: hi\r\n\r\nhello\r\n');
  const env = envelopeFor(body);
  const ack = await bus.publishEnvelope(subjects.resolve, env, body, { msgId: `${env.id}:ingress` });
  assert.equal(ack.duplicate, false);
  assert.ok(ack.seq > 0);

  const got = deferred<EnvelopeDelivery>();
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 2 }, async (d) => {
    got.resolve(d);
    return { kind: 'ack' };
  });
  const d = await got.promise;
  await c.stop();
  assert.equal(d.envelope.id, env.id);
  assert.deepEqual(d.envelope.recipients, env.recipients);
  assert.deepEqual(Buffer.from(d.inlineBody!), Buffer.from(body));
  assert.deepEqual(Buffer.from(await bus.loadBody(d.envelope, d.inlineBody)), Buffer.from(body));
  assert.equal(d.deliveryCount, 1);
  assert.equal(d.streamSeq, ack.seq);
  assert.equal(await messagesIn(streams.resolve.name), 0, 'acked message is removed from the work queue');
});

test('a republish with the same Nats-Msg-Id is a duplicate and is delivered once', async () => {
  const body = encoder.encode('x');
  const env = envelopeFor(body);
  const first = await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.id}:resolver` });
  const second = await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.id}:resolver` });
  assert.equal(second.duplicate, true);
  assert.equal(second.seq, first.seq);
  assert.equal(await messagesIn(streams.rewrite.name), 1);
});

test('an invalid envelope is rejected before it is published', async () => {
  const body = encoder.encode('x');
  const env = { ...envelopeFor(body), recipients: [] } as Envelope;
  await assert.rejects(bus.publishEnvelope(subjects.resolve, env, body, { msgId: 'bad' }), /recipients/);
  assert.equal(await messagesIn(streams.resolve.name), 0);
});

test('invalid bytes on a work subject are dead-lettered with the reason, then acked', async () => {
  await bus.js.publish(subjects.resolve, encoder.encode('not an envelope'), { msgID: 'garbage-1' });
  let calls = 0;
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 1 }, async () => {
    calls++;
    return { kind: 'ack' };
  });
  const dead = await waitUntil('dead letter', () => lastDeadLetter('resolver'));
  await waitUntil('input acked', async () => (await messagesIn(streams.resolve.name)) === 0);
  await c.stop();
  assert.equal(calls, 0, 'the handler never sees invalid bytes');
  assert.match(dead.header.get(headerNames.deadReason), /missing SLU1 magic/);
  assert.equal(dead.header.get(headerNames.deadStage), 'resolver');
  assert.equal(dead.string(), 'not an envelope');
});

test('a handler that throws is redelivered with backoff and dead-lettered after maxDeliver', async () => {
  const body = encoder.encode('poison');
  const env = envelopeFor(body);
  await bus.publishEnvelope(subjects.deliver, env, body, { msgId: `${env.id}:rewriter` });
  const seen: number[] = [];
  const c = bus.consumeEnvelopes(consumers.egress, { concurrency: 1, errorBackoffBaseMs: 50 }, async (d) => {
    seen.push(d.deliveryCount);
    throw new Error('remote exploded');
  });
  const dead = await waitUntil('dead letter', () => lastDeadLetter('egress'));
  await waitUntil('input acked', async () => (await messagesIn(streams.deliver.name)) === 0);
  await c.stop();
  assert.deepEqual(seen, [1, 2, 3]);
  assert.match(
    dead.header.get(headerNames.deadReason),
    /handler failed: remote exploded \(delivery 3 of 3\)/,
  );
  // The timeline shows it too.
  const ev = await waitUntil('dead-lettered event', () =>
    jsm.streams.getMessage(streams.events.name, { last_by_subj: subjects.event(env.id) }),
  );
  const event = eventSchema.parse(ev.json());
  assert.equal(event.kind, 'dead-lettered');
  assert.equal(event.stage, 'egress');
});

test('retry naks with the requested delay and the message comes back', async () => {
  const body = encoder.encode('later');
  const env = envelopeFor(body);
  await bus.publishEnvelope(subjects.deliver, env, body, { msgId: `${env.id}:r` });
  const times: number[] = [];
  const done = deferred<EnvelopeDelivery>();
  const c = bus.consumeEnvelopes(consumers.egress, { concurrency: 1 }, async (d) => {
    times.push(Date.now());
    if (d.deliveryCount === 1) return { kind: 'retry', delayMs: 400, reason: '451 try later' };
    done.resolve(d);
    return { kind: 'ack' };
  });
  const d = await done.promise;
  await c.stop();
  assert.equal(d.deliveryCount, 2);
  assert.ok(times[1]! - times[0]! >= 380, `redelivered after ${times[1]! - times[0]!} ms`);
  assert.equal(await messagesIn(streams.deliver.name), 0);
});

test("'dead' disposition dead-letters with the handler's reason", async () => {
  const body = encoder.encode('nope');
  const env = envelopeFor(body);
  await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.id}:d` });
  const c = bus.consumeEnvelopes(consumers.rewriter, { concurrency: 1 }, async () => ({
    kind: 'dead',
    reason: 'loop detected:\r\n too many Received headers',
  }));
  const dead = await waitUntil('dead letter', () => lastDeadLetter('rewriter'));
  await c.stop();
  assert.equal(dead.header.get(headerNames.deadReason), 'loop detected: too many Received headers');
  // Its own msg id, so a redelivery after a crash does not dead-letter twice.
  assert.match(dead.header.get(headerNames.msgId), /^dead:SLUICE_REWRITE:\d+$/);
});

test('concurrency bounds the handlers in flight', async () => {
  const n = 24;
  for (let i = 0; i < n; i++) {
    const body = encoder.encode(`m${i}`);
    const env = envelopeFor(body);
    await bus.publishEnvelope(subjects.resolve, env, body, { msgId: env.id });
  }
  let active = 0;
  let peak = 0;
  let handled = 0;
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 4 }, async () => {
    active++;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
    handled++;
    return { kind: 'ack' };
  });
  await waitUntil('all handled', () => handled === n);
  await c.stop();
  assert.equal(peak, 4);
  assert.equal(await messagesIn(streams.resolve.name), 0);
});

test('stop() waits for the in-flight handler, acks it, and leaves unstarted messages for the next consumer', async () => {
  const a = envelopeFor(encoder.encode('a'));
  const b = envelopeFor(encoder.encode('b'));
  await bus.publishEnvelope(subjects.resolve, a, encoder.encode('a'), { msgId: a.id });
  await bus.publishEnvelope(subjects.resolve, b, encoder.encode('b'), { msgId: b.id });

  const started = deferred();
  const release = deferred();
  const c1 = bus.consumeEnvelopes(consumers.resolver, { concurrency: 1 }, async (d) => {
    assert.equal(d.envelope.id, a.id);
    started.resolve();
    await release.promise;
    return { kind: 'ack' };
  });
  await started.promise;
  let stopped = false;
  const stopping = c1.stop().then(() => {
    stopped = true;
  });
  // Give stop() every chance to (wrongly) resolve early.
  await new Promise((r) => setImmediate(r));
  assert.equal(stopped, false, 'stop() must wait for the running handler');
  release.resolve();
  await stopping;
  assert.equal(
    await messagesIn(streams.resolve.name),
    1,
    'a was acked before stop() resolved; b is untouched',
  );

  const second = deferred<EnvelopeDelivery>();
  const t0 = Date.now();
  const c2 = bus.consumeEnvelopes(consumers.resolver, { concurrency: 1 }, async (d) => {
    second.resolve(d);
    return { kind: 'ack' };
  });
  const d = await second.promise;
  await c2.stop();
  assert.equal(d.envelope.id, b.id);
  assert.equal(d.deliveryCount, 1, 'b was never handed to the stopped consumer');
  assert.ok(Date.now() - t0 < 5000, 'b is available at once, not after ack_wait');
});

test('a full work stream refuses publishes with BusPublishError{full: true}', async () => {
  const small = await connectTestBus([nats.url], {}, recordingLog());
  const deliver = (await jsm.streams.info(streams.deliver.name)).config;
  // A message-count cap: exact on every server version (a byte cap is not on 2.9, store-budget.ts).
  await jsm.streams.update(streams.deliver.name, { ...deliver, max_msgs: 8 });
  try {
    const body = new Uint8Array(2000).fill(65);
    let err: unknown;
    for (let i = 0; i < 20 && !err; i++) {
      const env = envelopeFor(body);
      await small.publishEnvelope(subjects.deliver, env, body, { msgId: env.id }).catch((e) => {
        err = e;
      });
    }
    assert.ok(err instanceof BusPublishError, `expected BusPublishError, got ${err}`);
    assert.equal(err.full, true);
    assert.match(err.message, /full/);
  } finally {
    await jsm.streams.purge(streams.deliver.name);
    await bus.ensureTopology(); // back to unlimited for the other tests
    await small.close();
  }
});

test('publishing without a stream is BusPublishError{full: false}', async () => {
  const quick = await connectTestBus([nats.url], { publishTimeoutMs: 300 });
  try {
    const body = encoder.encode('x');
    const env = envelopeFor(body);
    const err = await quick
      .publishEnvelope('sluice.v1.nowhere', env, body, { msgId: env.id })
      .catch((e) => e);
    assert.ok(err instanceof BusPublishError);
    assert.equal(err.full, false);
    assert.match(err.message, /no JetStream stream answers/);
  } finally {
    await quick.close();
  }
});

test('deadLetter keeps the bytes and headers, recordEvent never throws', async () => {
  await bus.deadLetter('filter', 'verdict timeout', encoder.encode('raw'), { 'X-Origin': 'test' });
  const dead = await lastDeadLetter('filter');
  assert.ok(dead);
  assert.equal(dead.header.get('X-Origin'), 'test');
  assert.equal(dead.header.get(headerNames.deadStage), 'filter');
  // A queue id that is not a subject token is logged and dropped, not thrown.
  await bus.recordEvent({
    v: 1,
    kind: 'dead-lettered',
    queueId: 'bad.id.*',
    at: new Date().toISOString(),
    stage: 'filter',
    instance: 'test',
    reason: 'x',
  });
});

test('a stopped idle consumer leaves no pull request behind that could swallow a message', async () => {
  const idle = bus.consumeEnvelopes(consumers.resolver, { concurrency: 8 }, async () => ({ kind: 'ack' }));
  await waitUntil(
    'pull',
    async () => (await jsm.consumers.info(streams.resolve.name, 'resolver')).num_waiting > 0,
  );
  await idle.stop();
  const env = envelopeFor(encoder.encode('x'));
  await bus.publishEnvelope(subjects.resolve, env, encoder.encode('x'), { msgId: env.id });
  const got = deferred<EnvelopeDelivery>();
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 1 }, async (d) => {
    got.resolve(d);
    return { kind: 'ack' };
  });
  const d = await got.promise;
  await c.stop();
  assert.equal(d.deliveryCount, 1);
});

test('readTimeline returns a message’s events in order; consumerLag counts the backlog', async () => {
  const env = envelopeFor(encoder.encode('t'));
  const base = { v: 1 as const, queueId: env.id, instance: 'test', at: new Date().toISOString() };
  await bus.recordEvent({
    ...base,
    kind: 'received',
    stage: 'ingress',
    client: '192.0.2.10',
    helo: 'client.example.test',
    mailFrom: 'alice@example.org',
    recipients: ['bob@example.net'],
    size: 1,
  });
  await bus.recordEvent({ ...base, kind: 'rewritten', stage: 'rewriter', changes: ['srs'] });
  // Another message's event in between must not show up.
  await bus.recordEvent({
    ...base,
    queueId: envelopeFor(encoder.encode('o')).id,
    kind: 'rewritten',
    stage: 'rewriter',
    changes: [],
  });
  await bus.recordEvent({ ...base, kind: 'dead-lettered', stage: 'egress', reason: 'x' });
  await bus.eventsSettled(); // recordEvent does not wait for the PubAck
  const events = await bus.readTimeline(env.id);
  assert.deepEqual(
    events.map((e) => e.kind),
    ['received', 'rewritten', 'dead-lettered'],
  );
  assert.deepEqual(await bus.readTimeline('01JUNKNOWNQUEUEID000000000'), []);
  await assert.rejects(bus.readTimeline('a.b'), /not a queue id/);

  await bus.publishEnvelope(subjects.rewrite, env, encoder.encode('t'), { msgId: `${env.id}:lag` });
  const lag = await bus.consumerLag(consumers.rewriter);
  assert.equal(lag.pending, 1);
  assert.equal(lag.ackPending, 0);
  assert.equal(bus.isConnected(), true);
});
