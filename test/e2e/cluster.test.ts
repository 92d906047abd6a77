/**
 * The cluster shape: a 3-node JetStream cluster with every stream, consumer,
 * KV bucket and object store at 3 replicas, and two complete Sluice instances
 * (as two pods of each service would be) sharing the same queues. Mail sent
 * to either MX is delivered exactly once, whichever instance's stages pick it
 * up — and keeps flowing when one NATS node is killed.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type DnsServer,
  type NatsTestServer,
  type SmtpSink,
  sendMail,
  startDnsServer,
  startNatsCluster,
  startSmtpSink,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort } from './helpers.ts';

let cluster: NatsTestServer;
let sink: SmtpSink;
let dns: DnsServer;
const runtimes: Runtime[] = [];

before(async () => {
  cluster = await startNatsCluster(3);
  sink = await startSmtpSink({ port: 0 });
  dns = await startDnsServer([]);
  for (const name of ['a', 'b']) {
    const config = parseConfig(
      {
        hostname: 'mx.example.org',
        instance: `sluice-${name}`,
        domains: { primary: 'example.org' },
        routing: { forwards: { 'alice@example.org': ['alice@example.net'] } },
        transports: { 'example.net': { host: '127.0.0.1', port: sink.port } },
        nats: { servers: cluster.urls, replicas: 3 },
        ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
        // Two deliveries in flight per replica (each takes >= 100 ms: the sink's greeting pause),
        // so one egress cannot pull the whole batch and both replicas must share it.
        egress: { concurrency: 2 },
        dns: { servers: [dns.address], timeout: 1 },
        log: { level: 'warn' },
      },
      `cluster-${name}`,
    );
    runtimes.push(await startRuntime({ config, services: allServices, logDestination: devNull() }));
  }
});

after(async () => {
  for (const rt of runtimes) await rt.stop();
  await Promise.all([sink?.stop(), dns?.stop()]);
  await cluster?.stop();
});

async function sendBatch(prefix: string, count: number) {
  const ports = runtimes.map(ingressPort);
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      sendMail({
        port: ports[i % ports.length]!,
        from: 's@sender.test',
        to: ['alice@example.org'],
        raw: Buffer.from(`From: s@sender.test\r\nSubject: ${prefix}-${i}\r\n\r\nbody ${i}\r\n`),
      }),
    ),
  );
}

function deliveredCounts(prefix: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of sink.messages) {
    const tag = new RegExp(`Subject: (${prefix}-\\d+)`).exec(m.raw.toString())?.[1];
    if (tag) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return counts;
}

test('streams are replicated three times', async () => {
  const info = await runtimes[0]!.bus.streamReplicas();
  for (const [stream, replicas] of Object.entries(info)) assert.equal(replicas, 3, stream);
});

test('two instances share the work; each message is delivered exactly once', async () => {
  await sendBatch('shared', 30);
  await sink.waitFor(() => deliveredCounts('shared').size === 30, 30_000);
  const counts = deliveredCounts('shared');
  assert.ok(
    [...counts.values()].every((n) => n === 1),
    JSON.stringify([...counts]),
  );
  // Both instances' egress took part (competing consumers on one durable).
  const egressInstances = new Set<string>();
  for (const rt of runtimes) {
    const delivered = await rt.metrics.registry.getSingleMetricAsString('sluice_deliveries_total');
    if (/outcome="delivered"\} [1-9]/.test(delivered)) egressInstances.add(rt.instance);
  }
  assert.equal(egressInstances.size, 2, 'both egress replicas delivered some messages');
});

test('mail keeps flowing with one NATS node killed', async () => {
  cluster.nodes[2]!.kill();
  await sendBatch('degraded', 10);
  await sink.waitFor(() => deliveredCounts('degraded').size === 10, 30_000);
  assert.ok([...deliveredCounts('degraded').values()].every((n) => n === 1));
});
