/**
 * Backpressure: a full next stream is never a failure. The publish hold
 * retries and extends the input's ack deadline until there is room (or the
 * stage stops); a "full" error that still reaches the consumer is nak'ed
 * without counting toward maxDeliver, so the message is never dead-lettered
 * for it (real nats-server for the consumer part).
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { consumers, streams, subjects } from '@sluice/proto';
import { waitUntil } from '@sluice/test-harness';
import { holdWhileFull } from './backpressure.ts';
import { encoder, envelopeFor, recordingLog, startTestBus, type TestBus } from './test-fixtures.ts';
import { BusPublishError } from './types.ts';

const full = () => new BusPublishError('stream for x is full: maximum messages exceeded', { full: true });

test('holdWhileFull retries a full publish, extending the ack deadline, until it goes through', async () => {
  let tries = 0;
  let working = 0;
  let onFull = 0;
  const r = await holdWhileFull(
    async () => {
      if (++tries <= 4) throw full();
      return 'stored';
    },
    { working: () => working++, signal: new AbortController().signal, onFull: () => onFull++ },
    { log: recordingLog(), subject: 'x', queueId: 'q', maxPauseMs: 20 },
  );
  assert.equal(r, 'stored');
  assert.equal(tries, 5);
  assert.equal(working, 4);
  assert.equal(onFull, 4);
});

test('holdWhileFull: other errors are thrown at once, and a stop ends the hold with the "full" error', async () => {
  const log = recordingLog();
  const stop = new AbortController();
  await assert.rejects(
    holdWhileFull(
      async () => {
        throw new BusPublishError('no PubAck', { full: false });
      },
      { working: () => {}, signal: stop.signal },
      { log, subject: 'x', queueId: 'q', maxPauseMs: 20 },
    ),
    /no PubAck/,
  );
  let tries = 0;
  const held = holdWhileFull(
    async () => {
      tries++;
      throw full();
    },
    { working: () => {}, signal: stop.signal },
    { log, subject: 'x', queueId: 'q', maxPauseMs: 20 },
  );
  await waitUntil('the hold to retry', () => tries >= 2);
  stop.abort();
  await assert.rejects(held, (err: unknown) => err instanceof BusPublishError && err.full);
});

let tb: TestBus;
before(async () => {
  tb = await startTestBus({ maxDeliver: 2 });
});
after(() => tb?.stop());

test('a "full" error reaching the consumer is not counted toward maxDeliver: never dead-lettered', async () => {
  const body = encoder.encode('held');
  const env = envelopeFor(body);
  await tb.bus.publishEnvelope(subjects.resolve, env, body, { msgId: env.id });
  let calls = 0;
  let acked = false;
  const c = tb.bus.consumeEnvelopes(consumers.resolver, { concurrency: 1, fullStreamNakMs: 20 }, async () => {
    // Five "full" answers with maxDeliver 2: counted, this would be a dead letter at the second.
    if (++calls <= 5) throw full();
    acked = true;
    return { kind: 'ack' };
  });
  try {
    await waitUntil('the message to be acked once there is room', () => acked, { timeoutMs: 10_000 });
  } finally {
    await c.stop();
  }
  assert.equal(calls, 6);
  const jsm = await jetstreamManager(tb.bus.nc);
  assert.equal((await jsm.streams.info(streams.dead.name)).state.messages, 0, 'nothing dead-lettered');
});
