/**
 * The MX's shared session counters against a real nats-server: sessions
 * counted at once through two connections (two ingress replicas) are all
 * counted, each gets a distinct count, and different keys do not mix.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type NatsTestServer, startNats } from '@sluice/test-harness';
import { Bus } from './bus.ts';
import { defaultBusConfig } from './config.ts';
import { recordingLog } from './test-fixtures.ts';

let nats: NatsTestServer;
let a: Bus;
let b: Bus;
before(async () => {
  nats = await startNats();
  const cfg = defaultBusConfig({ servers: [nats.url] });
  [a, b] = await Promise.all([Bus.connect(cfg, recordingLog()), Bus.connect(cfg, recordingLog())]);
  await a.ensureTopology();
});
after(async () => {
  await a?.close();
  await b?.close();
  await nats?.stop();
});

test('40 sessions counted at once through two replicas: counts 1..40, each once', async () => {
  const key = '192_0_2_7.m29000001';
  const counts = await Promise.all(
    Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).countIngressSession(key)),
  );
  assert.deepEqual(
    [...counts].sort((x, y) => x - y),
    Array.from({ length: 40 }, (_, i) => i + 1),
  );
  assert.equal(await a.countIngressSession('198_51_100_1.m29000001'), 1, 'another client starts at 1');
  assert.equal(await b.countIngressSession(key), 41);
});
