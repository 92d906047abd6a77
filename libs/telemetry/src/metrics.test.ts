import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetrics } from './metrics.ts';

const SLUICE_METRICS = [
  'sluice_backpressure_waits_total',
  'sluice_deliveries_total',
  'sluice_delivery_repeats_total',
  'sluice_destination_backoffs_total',
  'sluice_egress_postponed_total',
  'sluice_dsns_queued_total',
  'sluice_filter_dns_lookups_total',
  'sluice_filter_shed_total',
  'sluice_filter_waiting_requests',
  'sluice_ledger_restored_total',
  'sluice_store_free_bytes',
  'sluice_store_guard_tripped',
  'sluice_delivery_latency_seconds',
  'sluice_dead_lettered_total',
  'sluice_messages_received_total',
  'sluice_messages_rejected_total',
  'sluice_nats_operations_total',
  'sluice_nats_round_trips_total',
  'sluice_queue_depth',
  'sluice_rewrites_total',
  'sluice_smtp_sessions_total',
  'sluice_stage_duration_seconds',
  'sluice_stage_processed_total',
  'sluice_timeline_events_lost_total',
  'sluice_tls_results_total',
  'sluice_verdicts_total',
];

test('the registry holds exactly the Sluice instruments, plus process metrics', async () => {
  const m = createMetrics();
  const names = (await m.registry.getMetricsAsJSON()).map((x) => x.name);
  assert.deepEqual(names.filter((n) => n.startsWith('sluice_')).sort(), [...SLUICE_METRICS].sort());
  assert.ok(names.includes('process_cpu_seconds_total'), 'default process metrics');
  assert.ok(names.includes('nodejs_eventloop_lag_seconds'), 'default Node.js metrics');
  for (const n of names.filter((x) => x.startsWith('sluice_'))) {
    const type = String((await m.registry.getSingleMetric(n)?.get())?.type);
    if (type === 'counter') assert.match(n, /_total$/, n);
    if (type === 'histogram') assert.match(n, /_seconds$/, n);
  }
});

test('two metric sets are independent (one per runtime, e.g. in tests)', async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.received.inc({ source: 'mx' });
  assert.match(await a.registry.metrics(), /sluice_messages_received_total\{source="mx"\} 1/);
  assert.doesNotMatch(await b.registry.metrics(), /sluice_messages_received_total\{source="mx"\}/);
});

test('the NATS counters copy the bus totals at each scrape', async () => {
  const m = createMetrics();
  let published = 3;
  m.observeNatsOperations(() => ({
    operations: [{ kind: 'publish_durable', stage: 'resolver', count: published }],
    roundTrips: [{ stage: 'resolver', count: 2 }],
    eventsLost: [{ reason: 'timeout', count: 1 }],
  }));
  let text = await m.registry.metrics();
  assert.match(text, /^sluice_nats_operations_total\{kind="publish_durable",stage="resolver"\} 3$/m);
  assert.match(text, /^sluice_nats_round_trips_total\{stage="resolver"\} 2$/m);
  assert.match(text, /^sluice_timeline_events_lost_total\{reason="timeout"\} 1$/m);
  published = 5;
  text = await m.registry.metrics();
  assert.match(text, /^sluice_nats_operations_total\{kind="publish_durable",stage="resolver"\} 5$/m);
});
