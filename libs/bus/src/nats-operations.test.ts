import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NatsOperations, sequentialCount } from './nats-operations.ts';

/** An operation that settles when the test says so. */
function pending() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

test('sequentialCount is the longest chain of intervals each starting after the previous ended', () => {
  assert.equal(sequentialCount([]), 0);
  assert.equal(
    sequentialCount([
      [0, 1],
      [1, 2],
      [2, 3],
    ]),
    3,
  );
  assert.equal(
    sequentialCount([
      [0, 2],
      [0, 2],
    ]),
    1,
  );
  // Two awaited together between two awaited alone.
  assert.equal(
    sequentialCount([
      [0, 1],
      [1, 3],
      [1.5, 2.5],
      [3, 4],
    ]),
    3,
  );
});

test('a path counts operations awaited one after another, once for those awaited together', async () => {
  const ops = new NatsOperations();
  await ops.path('resolver', async () => {
    await ops.awaited('publish_durable', 'resolver', async () => {});
    const a = pending();
    const b = pending();
    const both = Promise.all([
      ops.awaited('publish_durable', 'resolver', () => a.promise),
      ops.awaited('publish_durable', 'resolver', () => b.promise),
    ]);
    a.resolve();
    b.resolve();
    await both;
    ops.count('ack', 'resolver');
  });
  const s = ops.snapshot();
  assert.deepEqual(s.roundTrips, [{ stage: 'resolver', count: 2 }]);
  assert.deepEqual(
    s.operations.sort((x, y) => x.kind.localeCompare(y.kind)),
    [
      { kind: 'ack', stage: 'resolver', count: 1 },
      { kind: 'publish_durable', stage: 'resolver', count: 3 },
    ],
  );
});

test('an operation the path does not wait for is no round trip; one outside any path is one', async () => {
  const ops = new NatsOperations();
  const late = pending();
  let started!: Promise<void>;
  await ops.path('egress', async () => {
    started = ops.awaited('kv_put', 'egress', () => late.promise);
  });
  late.resolve();
  await started;
  assert.deepEqual(ops.snapshot().roundTrips, []);

  await ops.awaited('request', 'ingress', async () => {});
  await ops.awaited('request', 'ingress', async () => {});
  assert.deepEqual(ops.snapshot().roundTrips, [{ stage: 'ingress', count: 2 }]);
});

test('a failed operation is still counted and its error passes through', async () => {
  const ops = new NatsOperations();
  await assert.rejects(
    ops.path('rewriter', () =>
      ops.awaited('publish_durable', 'rewriter', async () => {
        throw new Error('no PubAck');
      }),
    ),
    /no PubAck/,
  );
  const s = ops.snapshot();
  assert.deepEqual(s.operations, [{ kind: 'publish_durable', stage: 'rewriter', count: 1 }]);
  assert.deepEqual(s.roundTrips, [{ stage: 'rewriter', count: 1 }]);
});
