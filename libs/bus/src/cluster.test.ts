import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { buckets, consumers, objectStores, streams, subjects } from '@sluice/proto';
import { type NatsTestServer, startNatsCluster, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { connectTestBus, encoder, envelopeFor, recordingLog } from './test-fixtures.ts';

let cluster: NatsTestServer;
let bus: Bus;
const log = recordingLog();

before(async () => {
  cluster = await startNatsCluster(3);
  bus = await connectTestBus(cluster.urls, { replicas: 3 }, log);
});
after(async () => {
  await bus?.close();
  await cluster?.stop();
});

test('3-node cluster: R3 topology, publish and consume', async () => {
  const jsm = await jetstreamManager(bus.nc);
  for (const name of [streams.resolve.name, `KV_${buckets.deliveryLedger}`, `OBJ_${objectStores.bodies}`]) {
    const info = await jsm.streams.info(name);
    assert.equal(info.config.num_replicas, 3, name);
    assert.equal(info.cluster?.replicas?.length, 2, `${name} has a leader and two followers`);
  }
  const ids = new Set<string>();
  for (let i = 0; i < 10; i++) {
    const body = encoder.encode(`m${i}`);
    const env = envelopeFor(body);
    await bus.publishEnvelope(subjects.resolve, env, body, { msgId: env.id });
    ids.add(env.id);
  }
  const seen = new Set<string>();
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 4 }, async (d) => {
    seen.add(d.envelope.id);
    return { kind: 'ack' };
  });
  await waitUntil('all consumed', () => seen.size === ids.size);
  await c.stop();
  assert.deepEqual([...seen].sort(), [...ids].sort());
  // Every ack was confirmed by the consumer's leader: nothing pending, nothing to redeliver.
  const ci = await jsm.consumers.info(streams.resolve.name, consumers.resolver.durable);
  assert.equal(ci.num_ack_pending, 0);
  assert.equal(ci.num_pending, 0);
});

test('3-node cluster: with one node down, publishes still get a PubAck (quorum 2 of 3)', async () => {
  // Stop a node the bus is not connected to, so this tests quorum rather than client failover.
  const connected = bus.nc.getServer();
  const victim = cluster.nodes.find((n) => !connected.endsWith(`:${n.clientPort}`))!;
  await victim.stop();
  try {
    const body = encoder.encode('still here');
    const env = envelopeFor(body);
    const ack = await bus.publishEnvelope(subjects.deliver, env, body, { msgId: env.id });
    assert.ok(ack.seq > 0);
    assert.equal(ack.duplicate, false);
  } finally {
    await victim.restart();
  }
});

test('3-node cluster: a topology declared while a node is down completes once it is back', async () => {
  // As when Sluice and NATS pods start together: three replicas cannot be placed on two nodes yet.
  const jsm = await jetstreamManager(bus.nc);
  await jsm.streams.delete(streams.events.name);
  const connected = bus.nc.getServer();
  const victim = cluster.nodes.find((n) => !connected.endsWith(`:${n.clientPort}`))!;
  await victim.stop();
  const declared = bus.ensureTopology();
  try {
    await waitUntil('a "not ready yet" warning', () =>
      log.lines.some((l) => l.level === 'warn' && /not ready for the topology yet/.test(l.msg ?? '')),
    );
  } finally {
    await victim.restart();
  }
  const report = await declared;
  assert.ok(report.created.includes(`stream ${streams.events.name}`), JSON.stringify(report));
  assert.equal((await jsm.streams.info(streams.events.name)).config.num_replicas, 3);
});
