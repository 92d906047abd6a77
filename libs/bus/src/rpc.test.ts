import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { headerNames, queueGroups, rpcErrorSchema, subjects } from '@sluice/proto';
import { type NatsTestServer, startNats, waitUntil } from '@sluice/test-harness';
import type { Bus } from './bus.ts';
import { RpcError } from './rpc.ts';
import { connectTestBus, encoder, recordingLog } from './test-fixtures.ts';

let nats: NatsTestServer;
let a: Bus;
let b: Bus;
const decoder = new TextDecoder();

before(async () => {
  nats = await startNats();
  a = await connectTestBus([nats.url]);
  b = await connectTestBus([nats.url]);
});
after(async () => {
  await Promise.all([a.close(), b.close()]);
  await nats?.stop();
});

test('request/reply over a queue group: each request is answered by exactly one server', async () => {
  const served = { a: 0, b: 0 };
  const sa = a.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 4 }, async (req) => {
    served.a++;
    return encoder.encode(`a:${decoder.decode(req.data)}`);
  });
  const sb = b.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 4 }, async (req) => {
    served.b++;
    return encoder.encode(`b:${decoder.decode(req.data)}`);
  });
  await Promise.all([a.nc.flush(), b.nc.flush()]);
  const replies = await Promise.all(
    Array.from({ length: 40 }, (_, i) => a.request(subjects.resolverLookup, encoder.encode(`q${i}`), 2000)),
  );
  replies.forEach((r, i) => {
    assert.match(decoder.decode(r), new RegExp(`^[ab]:q${i}$`));
  });
  assert.equal(served.a + served.b, 40);
  assert.ok(served.a > 0 && served.b > 0, `load shared: ${JSON.stringify(served)}`);
  await Promise.all([sa.stop(), sb.stop()]);
});

test('a request with no server fails fast with no_responders, a slow server with timeout', async () => {
  const t0 = Date.now();
  const none = await a.request(subjects.filterVerdict, encoder.encode('x'), 5000).catch((e) => e);
  assert.ok(none instanceof RpcError);
  assert.equal(none.code, 'no_responders');
  assert.ok(Date.now() - t0 < 2000, 'no responders is immediate, not a timeout');

  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const s = b.serve(subjects.filterVerdict, queueGroups.filter, { concurrency: 1 }, async () => {
    await gate;
    return encoder.encode('late');
  });
  await b.nc.flush();
  const slow = await a.request(subjects.filterVerdict, encoder.encode('x'), 200).catch((e) => e);
  assert.ok(slow instanceof RpcError);
  assert.equal(slow.code, 'timeout');
  assert.match(slow.message, /no reply on sluice\.v1\.rpc\.filter\.verdict within 200 ms/);
  release();
  await s.stop();
});

test('a handler error answers a small JSON error that request() turns into RpcError', async () => {
  const log = recordingLog();
  const c = await connectTestBus([nats.url], {}, log);
  try {
    const s = c.serve(subjects.filterVerdict, queueGroups.filter, { concurrency: 1 }, async () => {
      throw new Error('rspamd unreachable');
    });
    await c.nc.flush();
    const err = await a.request(subjects.filterVerdict, encoder.encode('x'), 2000).catch((e) => e);
    assert.ok(err instanceof RpcError);
    assert.equal(err.code, 'remote');
    assert.match(err.message, /rspamd unreachable/);
    // The raw reply matches the contract.
    const raw = await a.nc.request(subjects.filterVerdict, encoder.encode('x'), { timeout: 2000 });
    assert.equal(raw.headers?.get(headerNames.contentType), 'rpc-error/v1');
    assert.deepEqual(rpcErrorSchema.parse(raw.json()), { v: 1, error: 'rspamd unreachable' });
    assert.ok(log.lines.some((l) => l.level === 'error' && l.msg === 'request handler failed'));
    await s.stop();
  } finally {
    await c.close();
  }
});

test('RPC stop() drains: a request already received is still answered', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let started!: () => void;
  const inHandler = new Promise<void>((r) => {
    started = r;
  });
  const s = b.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 2 }, async () => {
    started();
    await gate;
    return encoder.encode('done');
  });
  await b.nc.flush();
  const pending = a.request(subjects.resolverLookup, encoder.encode('x'), 5000);
  await inHandler;
  const stopping = s.stop();
  release();
  assert.equal(decoder.decode(await pending), 'done');
  await stopping;
  const after = await a.request(subjects.resolverLookup, encoder.encode('x'), 1000).catch((e) => e);
  assert.equal((after as RpcError).code, 'no_responders');
});

test('a request carries its deadline (epoch ms) for the server to bound its work', async () => {
  let seen = '';
  const s = b.serve(subjects.resolverLookup, queueGroups.resolver, { concurrency: 1 }, async (req) => {
    seen = req.headers[headerNames.deadline] ?? '';
    return encoder.encode('ok');
  });
  await b.nc.flush();
  const before = Date.now();
  await a.request(subjects.resolverLookup, encoder.encode('q'), 3000);
  const deadline = Number(seen);
  assert.ok(deadline >= before + 3000 && deadline <= Date.now() + 3000, `deadline ${seen}`);
  await s.stop();
});

test('with maxQueued, a request beyond the slots and the wait queue is answered busy at once', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  let started = 0;
  let shed = 0;
  const lengths: number[] = [];
  const s = b.serve(
    subjects.resolverLookup,
    queueGroups.resolver,
    { concurrency: 1, maxQueued: 1, onShed: () => shed++, onQueueLength: (n) => lengths.push(n) },
    async (req) => {
      started++;
      await gate;
      return encoder.encode(`done:${decoder.decode(req.data)}`);
    },
  );
  await b.nc.flush();
  const first = a.request(subjects.resolverLookup, encoder.encode('1'), 10_000);
  const second = a.request(subjects.resolverLookup, encoder.encode('2'), 10_000);
  // The first holds the only slot, the second waits in the queue: then a third is one too many.
  await waitUntil('one request running, one waiting', () => started === 1 && lengths.at(-1) === 1);
  const t0 = Date.now();
  const third = await a.request(subjects.resolverLookup, encoder.encode('3'), 10_000).catch((e) => e);
  assert.ok(third instanceof RpcError, 'the third request fails');
  assert.equal(third.code, 'busy');
  assert.ok(Date.now() - t0 < 2000, `busy is answered at once, took ${Date.now() - t0} ms`);
  assert.equal(shed, 1);
  release();
  assert.deepEqual(
    [decoder.decode(await first), decoder.decode(await second)],
    ['done:1', 'done:2'],
    'the running and the waiting request both complete',
  );
  assert.equal(lengths.at(-1), 0, 'the wait queue is empty again');
  await s.stop();
});
