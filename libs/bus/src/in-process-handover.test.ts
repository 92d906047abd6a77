/**
 * In-process handover (in-process-handover.ts, decision 0046) against a real
 * nats-server: what a consumer that opted in takes without the stream, what
 * falls back to the stream and is then consumed there as usual, withdrawal
 * on stop, and RPC answered in process or, when the local server is
 * saturated or absent, over NATS.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { type JetStreamManager, jetstreamManager } from '@nats-io/jetstream';
import { consumers, partIdOf, queueGroups, streams, subjects } from '@sluice/proto';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { RpcError } from './rpc.ts';
import { connectTestBus, encoder, envelopeFor, recordingLog } from './test-fixtures.ts';
import type { Disposition, EnvelopeDelivery } from './types.ts';

let nats: NatsTestServer;
let bus: Bus;
let other: Bus;
let jsm: JetStreamManager;
const log = recordingLog();
const decoder = new TextDecoder();

before(async () => {
  nats = await startNats();
  bus = await connectTestBus([nats.url], { maxDeliver: 3 }, log);
  other = await connectTestBus([nats.url], { inProcessHandover: false });
  jsm = await jetstreamManager(bus.nc);
});
afterEach(async () => {
  for (const s of Object.values(streams)) await jsm.streams.purge(s.name);
});
after(async () => {
  await Promise.all([bus?.close(), other?.close()]);
  await nats?.stop();
});

const messagesIn = async (stream: string) => (await jsm.streams.info(stream)).state.messages;
const count = (b: Bus, kind: string, stage: string) =>
  b.operations.snapshot().operations.find((o) => o.kind === kind && o.stage === stage)?.count ?? 0;

function part(tag: string) {
  const body = encoder.encode(`Subject: ${tag}\r\n\r\n${tag}\r\n`);
  const env = envelopeFor(body);
  return { env: { ...env, partId: partIdOf(env.id, 'mx', ['bob@example.net']) }, body };
}

test('a consumer that opted in runs in the publisher path: no stream write, seq 0, counted as a handover', async () => {
  const seen: EnvelopeDelivery[] = [];
  const c = bus.consumeEnvelopes(consumers.rewriter, { concurrency: 2, handover: true }, async (d) => {
    seen.push(d);
    // Its own output is durable before it acks (here: the deliver stream).
    await bus.publishEnvelope(subjects.deliver, d.envelope, d.inlineBody, {
      msgId: `${d.envelope.partId}:rw`,
    });
    return { kind: 'ack' };
  });
  try {
    const { env, body } = part('handed');
    const before = count(bus, 'handover', 'rewriter');
    const ack = await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.partId}:resolver` });
    assert.deepEqual(ack, { seq: 0, duplicate: false });
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.envelope, env, 'the same object, not a copy: nothing encoded or decoded');
    assert.equal(seen[0]!.deliveryCount, 1);
    assert.equal(seen[0]!.streamSeq, 0);
    assert.equal(await messagesIn(streams.rewrite.name), 0, 'the rewrite stream was not written');
    assert.equal(await messagesIn(streams.deliver.name), 1, 'the handler output is durable');
    assert.equal(count(bus, 'handover', 'rewriter'), before + 1);
  } finally {
    await c.stop();
  }
});

for (const outcome of ['retry', 'dead', 'throw'] as const) {
  test(`a handler that does not ack in process (${outcome}): the part goes to the stream and is consumed there`, async () => {
    const calls: number[] = [];
    const c = bus.consumeEnvelopes(consumers.rewriter, { concurrency: 2, handover: true }, async (d) => {
      calls.push(d.streamSeq);
      if (d.streamSeq === 0) {
        if (outcome === 'throw') throw new Error('key not loaded yet');
        return outcome === 'retry'
          ? ({ kind: 'retry', delayMs: 0, reason: 'not now' } satisfies Disposition)
          : ({ kind: 'dead', reason: 'looks poisonous' } satisfies Disposition);
      }
      return { kind: 'ack' }; // from the stream, it goes through
    });
    try {
      const { env, body } = part(outcome);
      const ack = await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.partId}:resolver` });
      assert.ok(ack.seq > 0, 'published to the stream after the in-process attempt');
      await waitUntil('the stream consumer to take it', () => calls.length === 2);
      assert.equal(calls[0], 0, 'first in process');
      assert.equal(calls[1], ack.seq, 'then from the stream, with its sequence');
      await waitUntil('the stream to be empty', async () => (await messagesIn(streams.rewrite.name)) === 0);
      assert.ok(
        log.lines.some((l) => /published to its stream instead/.test(l.msg ?? '')),
        'the fallback is logged',
      );
    } finally {
      await c.stop();
    }
  });
}

test('stopping the consumer withdraws it: it waits for a running handover, then publishes go to the stream', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let started = 0;
  const c = bus.consumeEnvelopes(consumers.rewriter, { concurrency: 2, handover: true }, async () => {
    started++;
    await gate;
    return { kind: 'ack' };
  });
  const first = part('running');
  const running = bus.publishEnvelope(subjects.rewrite, first.env, first.body, {
    msgId: `${first.env.partId}:r`,
  });
  await waitUntil('the handover to start', () => started === 1);
  let stopped = false;
  const stopping = c.stop().then(() => {
    stopped = true;
  });
  const second = part('after stop');
  const late = await bus.publishEnvelope(subjects.rewrite, second.env, second.body, {
    msgId: `${second.env.partId}:r`,
  });
  assert.ok(late.seq > 0, 'a publish after stop() began goes to the stream');
  assert.equal(stopped, false, 'stop() waits for the running handover');
  release();
  assert.deepEqual(await running, { seq: 0, duplicate: false });
  await stopping;
  assert.equal(await messagesIn(streams.rewrite.name), 1, 'only the late part is in the stream');
});

test('a consumer that did not opt in is never run in process', async () => {
  let inProcess = 0;
  const c = bus.consumeEnvelopes(consumers.rewriter, { concurrency: 2 }, async (d) => {
    if (d.streamSeq === 0) inProcess++;
    return { kind: 'ack' };
  });
  try {
    const { env, body } = part('no opt-in');
    const ack = await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.partId}:r` });
    assert.ok(ack.seq > 0);
    await waitUntil('consumed from the stream', async () => (await messagesIn(streams.rewrite.name)) === 0);
    assert.equal(inProcess, 0);
  } finally {
    await c.stop();
  }
});

test('RPC: answered in process while a slot is free, over NATS when the local server is saturated', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const local = bus.serve(subjects.filterVerdict, queueGroups.filter, { concurrency: 1 }, async (req) => {
    const text = decoder.decode(req.data);
    if (text === 'hold') await gate;
    return encoder.encode(`local:${text}`);
  });
  const remote = other.serve(subjects.filterVerdict, queueGroups.filter, { concurrency: 4 }, async (req) =>
    encoder.encode(`remote:${decoder.decode(req.data)}`),
  );
  await Promise.all([bus.nc.flush(), other.nc.flush()]);
  try {
    const requestsBefore = count(bus, 'request', 'ingress');
    const localBefore = count(bus, 'local_request', 'ingress');
    for (let i = 0; i < 5; i++) {
      const reply = await bus.request(subjects.filterVerdict, encoder.encode(`q${i}`), 2000, 'ingress');
      assert.equal(decoder.decode(reply), `local:q${i}`, 'a free local slot answers, never NATS');
    }
    assert.equal(count(bus, 'local_request', 'ingress'), localBefore + 5);
    assert.equal(count(bus, 'request', 'ingress'), requestsBefore, 'no NATS request was made');

    const held = bus.request(subjects.filterVerdict, encoder.encode('hold'), 5000, 'ingress');
    // The local slot is taken: the next requests go over NATS, where the queue group holds both
    // servers (those reaching this process' subscription wait for the held one to finish).
    const overNats = Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        bus.request(subjects.filterVerdict, encoder.encode(`n${i}`), 5000, 'ingress'),
      ),
    );
    await waitUntil(
      'the six requests to be sent',
      () => count(bus, 'request', 'ingress') === requestsBefore + 6,
    );
    assert.equal(
      count(bus, 'local_request', 'ingress'),
      localBefore + 6,
      'only the held one more in process',
    );
    release();
    const replies = (await overNats).map((r) => decoder.decode(r));
    replies.forEach((r, i) => {
      assert.match(r, new RegExp(`^(local|remote):n${i}$`), 'answered by a member of the queue group');
    });
    assert.equal(decoder.decode(await held), 'local:hold');
    // With the local server gone, the other replica answers over NATS.
    await local.stop();
    assert.equal(
      decoder.decode(await bus.request(subjects.filterVerdict, encoder.encode('z'), 2000)),
      'remote:z',
    );
  } finally {
    release();
    await Promise.all([local.stop(), remote.stop()]);
  }
});

test('RPC in process: a failing handler is RpcError remote, a slow one RpcError timeout', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let deadlineSeen: string | undefined;
  const s = bus.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 2 }, async (req) => {
    const text = decoder.decode(req.data);
    if (text === 'fail') throw new Error('routing table not loaded');
    deadlineSeen =
      req.headers['Sluice-Deadline'] ?? Object.entries(req.headers).find(([k]) => /deadline/i.test(k))?.[1];
    await gate;
    return encoder.encode('late');
  });
  try {
    const failed = await bus.request(subjects.resolverLookup, encoder.encode('fail'), 2000).catch((e) => e);
    assert.ok(failed instanceof RpcError);
    assert.equal(failed.code, 'remote');
    assert.match(failed.message, /routing table not loaded/);

    const t0 = Date.now();
    const slow = await bus.request(subjects.resolverLookup, encoder.encode('slow'), 200).catch((e) => e);
    assert.ok(slow instanceof RpcError);
    assert.equal(slow.code, 'timeout');
    assert.ok(Date.now() - t0 < 2000);
    assert.ok(deadlineSeen && Number(deadlineSeen) > t0, 'the handler saw the requester deadline');
  } finally {
    release();
    await s.stop();
  }
});

test('with bus.inProcessHandover false every request and publish goes through NATS', async () => {
  const s = other.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 2 }, async () =>
    encoder.encode('ok'),
  );
  const c = other.consumeEnvelopes(consumers.rewriter, { concurrency: 2, handover: true }, async () => ({
    kind: 'ack',
  }));
  try {
    await other.nc.flush();
    const before = count(other, 'request', 'none');
    assert.equal(
      decoder.decode(await other.request(subjects.resolverLookup, encoder.encode('x'), 2000)),
      'ok',
    );
    assert.equal(count(other, 'request', 'none'), before + 1);
    assert.equal(count(other, 'local_request', 'none'), 0);
    const { env, body } = part('off');
    const ack = await other.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.partId}:r` });
    assert.ok(ack.seq > 0, 'written to the stream');
  } finally {
    await Promise.all([s.stop(), c.stop()]);
  }
});
