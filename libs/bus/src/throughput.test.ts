/**
 * Not a benchmark gate: a record of publish and consume rates on this machine
 * (reported as test diagnostics), and a check that a burst is consumed exactly
 * once with every handler settled.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { consumers, subjects } from '@sluice/proto';
import { waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { envelopeFor, startTestBus } from './test-fixtures.ts';

let bus: Bus;
let stopBus: () => Promise<void>;
before(async () => {
  ({ bus, stop: stopBus } = await startTestBus());
});
after(() => stopBus());

const body = randomBytes(5 * 1024);

async function publishBurst(n: number, inFlight: number): Promise<Set<string>> {
  const ids = new Set<string>();
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const env = envelopeFor(body);
      ids.add(env.id);
      await bus.publishEnvelope(subjects.resolve, env, body, { msgId: `${env.id}:ingress` });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return ids;
}

test('publish (awaited one by one and pipelined) and consume rates, each message handled once', async (t) => {
  const warm = await publishBurst(200, 8); // JIT warm-up, consumed below with the rest
  const n1 = 500;
  let t0 = performance.now();
  const a = await publishBurst(n1, 1);
  const serialRate = n1 / ((performance.now() - t0) / 1000);

  const n2 = 2000;
  t0 = performance.now();
  const b = await publishBurst(n2, 64);
  const pipelinedRate = n2 / ((performance.now() - t0) / 1000);

  const expected = new Set([...warm, ...a, ...b]);
  const seen = new Map<string, number>();
  t0 = performance.now();
  const c = bus.consumeEnvelopes(consumers.resolver, { concurrency: 32 }, async (d) => {
    seen.set(d.envelope.id, (seen.get(d.envelope.id) ?? 0) + 1);
    return { kind: 'ack' };
  });
  await waitUntil('all consumed', () => seen.size === expected.size, { timeoutMs: 30_000 });
  const consumeRate = expected.size / ((performance.now() - t0) / 1000);
  await c.stop();

  t.diagnostic(
    `5 KB envelopes: publish awaited ${serialRate.toFixed(0)}/s, 64 in flight ${pipelinedRate.toFixed(0)}/s`,
  );
  t.diagnostic(`consume (32 handlers, confirmed acks) ${consumeRate.toFixed(0)}/s`);
  assert.equal(seen.size, expected.size);
  assert.ok(
    [...seen.values()].every((count) => count === 1),
    'no message handled twice',
  );
  assert.equal((await bus.js.streams.get('SLUICE_RESOLVE').then((s) => s.info())).state.messages, 0);
});
