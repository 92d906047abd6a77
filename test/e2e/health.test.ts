/**
 * Liveness follows the bus: /healthz fails once the NATS connection has been
 * gone longer than http.healthBusGrace (so a supervisor restarts a process
 * that lost its bus for good), /readyz fails at once, and both recover when
 * NATS is back. Real nats-server (stopped and restarted), real HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { type Runtime, startRuntime } from '@sluice/runtime';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import { devNull } from './helpers.ts';

let nats: NatsTestServer;
let rt: Runtime | undefined;

before(async () => {
  nats = await startNats();
});
after(async () => {
  await rt?.stop();
  await nats?.stop();
});

async function probe(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${rt!.httpPort}${path}`);
  return { status: res.status, body: await res.text() };
}

test('/healthz fails after the bus is down longer than healthBusGrace, and recovers', async () => {
  const GRACE_S = 1;
  const config = parseConfig(
    {
      domains: { primary: 'example.org' },
      nats: { servers: [nats.url] },
      http: { listen: { host: '127.0.0.1', port: 0 }, healthBusGrace: GRACE_S },
      log: { level: 'warn' },
    },
    'health',
  );
  rt = await startRuntime({ config, services: [], logDestination: devNull() });
  assert.equal((await probe('/healthz')).status, 200);

  // Taken before the stop: the client may see the connection close before stop() resolves,
  // and the grace counts from that moment, never before this one.
  const downAt = Date.now();
  await nats.nodes[0]!.stop();
  await waitUntil('/readyz to fail while NATS is down', async () => (await probe('/readyz')).status === 503);
  // Within the grace, liveness still holds (the probe ran before the grace ran out).
  const early = await probe('/healthz');
  if (Date.now() - downAt < GRACE_S * 1000) assert.equal(early.status, 200, early.body);
  const failed = await waitUntil(
    'healthz to fail after the grace',
    async () => {
      const r = await probe('/healthz');
      return r.status === 503 && r;
    },
    { timeoutMs: 10_000 },
  );
  assert.ok(Date.now() - downAt >= GRACE_S * 1000, 'not before the grace');
  assert.match(failed.body, /"nats":"down for \d+ s"/);

  await nats.nodes[0]!.restart();
  await waitUntil('healthz to recover with NATS', async () => (await probe('/healthz')).status === 200, {
    timeoutMs: 15_000,
  });
});
