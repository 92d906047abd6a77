import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type HttpServer, startHttpServer } from './http.ts';
import { createMetrics } from './metrics.ts';

const metrics = createMetrics();
let ready = false;
let server: HttpServer;

before(async () => {
  server = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    health: async () => ({ ok: true, checks: { process: true } }),
    ready: async () => ({ ok: ready, checks: { nats: ready, stopping: false } }),
  });
});
after(() => server.close());

const get = (path: string) => fetch(`http://127.0.0.1:${server.port}${path}`);

test('port 0 gives a real port', () => {
  assert.ok(server.port > 0);
});

test('GET /metrics serves the counters in the Prometheus text format', async () => {
  metrics.received.inc({ source: 'mx' }, 3);
  metrics.deliveries.inc({ outcome: 'delivered' });
  metrics.stageDuration.observe({ stage: 'resolver' }, 0.004);
  metrics.queueDepth.set({ stream: 'SLUICE_RESOLVE' }, 7);
  const res = await get('/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  assert.match(text, /^# TYPE sluice_messages_received_total counter$/m);
  assert.match(text, /^sluice_messages_received_total\{source="mx"\} 3$/m);
  assert.match(text, /^sluice_deliveries_total\{outcome="delivered"\} 1$/m);
  assert.match(text, /^sluice_stage_duration_seconds_bucket\{le="0\.005",stage="resolver"\} 1$/m);
  assert.match(text, /^sluice_queue_depth\{stream="SLUICE_RESOLVE"\} 7$/m);
  assert.match(text, /^process_cpu_seconds_total /m);
});

test('/readyz is 503 with the checks until ready, then 200; /healthz is 200', async () => {
  let res = await get('/readyz');
  assert.equal(res.status, 503);
  assert.deepEqual(await res.json(), { ok: false, checks: { nats: false, stopping: false } });
  ready = true;
  res = await get('/readyz');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, checks: { nats: true, stopping: false } });
  res = await get('/healthz');
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true, checks: { process: true } });
});

test('a check that throws or hangs answers 503 instead of hanging the probe', async () => {
  const s = await startHttpServer({
    host: '127.0.0.1',
    port: 0,
    metrics,
    health: async () => {
      throw new Error('event loop wedged');
    },
    ready: () => new Promise(() => {}),
    checkTimeoutMs: 50,
  });
  try {
    const health = await fetch(`http://127.0.0.1:${s.port}/healthz`);
    assert.equal(health.status, 503);
    assert.deepEqual(await health.json(), { ok: false, checks: { error: 'event loop wedged' } });
    const readiness = await fetch(`http://127.0.0.1:${s.port}/readyz`);
    assert.equal(readiness.status, 503);
    assert.match(JSON.stringify(await readiness.json()), /no answer within 50 ms/);
  } finally {
    await s.close();
  }
});

test('unknown paths are 404 and other methods 405', async () => {
  assert.equal((await get('/nope')).status, 404);
  const post = await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
});
