import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { consumers, subjects } from '@sluice/proto';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { connectTestBus, encoder, envelopeFor, recordingLog } from './test-fixtures.ts';

let nats: NatsTestServer;
let bus: Bus;
const log = recordingLog();

before(async () => {
  nats = await startNats();
  bus = await connectTestBus([nats.url], {}, log);
});
after(async () => {
  await bus?.close();
  await nats?.stop();
});

async function publish(tag: string): Promise<string> {
  const body = encoder.encode(tag);
  const env = envelopeFor(body);
  await bus.publishEnvelope(subjects.deliver, env, body, { msgId: env.id });
  return env.id;
}

test('the consume loop resumes after a server restart', async () => {
  const seen = new Set<string>();
  const c = bus.consumeEnvelopes(consumers.egress, { concurrency: 2 }, async (d) => {
    seen.add(d.envelope.id);
    return { kind: 'ack' };
  });
  const before = await publish('before');
  await waitUntil('message before restart', () => seen.has(before));

  await nats.nodes[0]!.restart();
  // Published while the client may still be reconnecting: the PubAck wait covers it.
  const afterRestart = await publish('after');
  await waitUntil('message after restart', () => seen.has(afterRestart), { timeoutMs: 20_000 });
  await c.stop();
  assert.ok(log.lines.some((l) => /NATS connection (lost|restored)/.test(l.msg ?? '')));
});

test('acknowledged messages survive a server crash (SIGKILL) and are consumed after restart', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 50; i++) ids.push(await publish(`m${i}`));
  await nats.nodes[0]!.kill();
  await nats.nodes[0]!.restart();
  const seen = new Set<string>();
  const c = bus.consumeEnvelopes(consumers.egress, { concurrency: 8 }, async (d) => {
    seen.add(d.envelope.id);
    return { kind: 'ack' };
  });
  await waitUntil('all 50 messages after the crash', () => ids.every((id) => seen.has(id)), {
    timeoutMs: 20_000,
  });
  await c.stop();
});

test('a consumer that dies mid-handler never acks: the message is redelivered to another one', async () => {
  const crashing = await connectTestBus([nats.url], { ackWaitMs: 1000 });
  const healthy = await connectTestBus([nats.url], { ackWaitMs: 1000 });
  try {
    const id = await publish('crash');
    let started!: () => void;
    const inHandler = new Promise<void>((r) => {
      started = r;
    });
    crashing.consumeEnvelopes(consumers.egress, { concurrency: 1 }, async () => {
      started();
      return new Promise(() => {}); // never finishes: the process "dies" below
    });
    await inHandler;
    await crashing.nc.close(); // no drain, no stop: like a killed process

    let redelivery = 0;
    const c = healthy.consumeEnvelopes(consumers.egress, { concurrency: 1 }, async (d) => {
      if (d.envelope.id === id) redelivery = d.deliveryCount;
      return { kind: 'ack' };
    });
    await waitUntil('redelivery after ack_wait', () => redelivery > 0);
    await c.stop();
    assert.equal(redelivery, 2);
  } finally {
    await healthy.close();
    await bus.ensureTopology(); // restore the default ack_wait for the durable consumer
  }
});
