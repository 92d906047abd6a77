/**
 * The spine under storage and server faults, in one process like `sluice run`
 * against a real nats-server and a real SMTP sink:
 *
 *   - a full downstream stream is backpressure: the rewriter holds its input
 *     without spending deliveries, nothing is dead-lettered, and everything
 *     flows once room is made;
 *   - a store budget filled under load (ingress 452s, every stage backed up)
 *     and then freed: each accepted message is delivered exactly once;
 *   - nats-server killed (SIGKILL) right as the sink answers 250: the ledger
 *     write is held through the outage, no second copy is sent, and every
 *     work queue drains to zero afterwards (queue depth metric 0).
 *
 * Duplicates are counted per fault and printed as test diagnostics.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { parseConfig, type SluiceConfig } from '@sluice/config';
import { consumers, streams } from '@sluice/proto';
import { type Runtime, startRuntime } from '@sluice/runtime';
import {
  type NatsTestServer,
  type SinkFailure,
  type SmtpSink,
  sendMail,
  startDnsServer,
  startNats,
  startSmtpSink,
  waitForDrainedQueues,
  waitUntil,
} from '@sluice/test-harness';
import { allServices } from '../../cli/src/services.ts';
import { devNull, ingressPort } from './helpers.ts';

const cleanups: Array<() => Promise<unknown>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

interface Bed {
  nats: NatsTestServer;
  sink: SmtpSink;
  config: SluiceConfig;
  /** Decides the sink's answer after the final dot (undefined: 250). */
  onData: (tag: string) => SinkFailure | undefined;
}

async function startBed(extra: Record<string, unknown>): Promise<Bed> {
  const nats = await startNats();
  cleanups.push(() => nats.stop());
  const bed = { onData: (_tag: string): SinkFailure | undefined => undefined } as Bed;
  const sink = await startSmtpSink({ port: 0, failData: (m) => bed.onData(tagOf(m.raw)) });
  cleanups.push(() => sink.stop());
  // An empty DNS server (every name NXDOMAIN: SPF and DMARC none); a dead one would make the filter tempfail.
  const dns = await startDnsServer([]);
  cleanups.push(() => dns.stop());
  const config = parseConfig(
    {
      hostname: 'mx.example.org',
      domains: { primary: 'example.org' },
      routing: { forwards: { 'alice@example.org': ['alice@example.net'] } },
      transports: { 'example.net': { host: '127.0.0.1', port: sink.port } },
      nats: { servers: [nats.url] },
      ingress: { listen: [{ host: '127.0.0.1', port: 0 }] },
      dns: { servers: [dns.address], timeout: 1 },
      log: { level: 'warn' },
      ...extra,
    },
    'store-faults',
  );
  return Object.assign(bed, { nats, sink, config });
}

async function run(bed: Bed, names: string[]): Promise<Runtime> {
  const rt = await startRuntime({
    config: bed.config,
    services: allServices.filter((s) => names.includes(s.name)),
    logDestination: devNull(),
  });
  cleanups.push(() => rt.stop());
  return rt;
}

function tagOf(raw: Buffer | string): string {
  return /Subject: (\S+)/.exec(raw.toString())?.[1] ?? '?';
}

function message(tag: string): Buffer {
  return Buffer.from(`From: s@sender.test\r\nTo: alice@example.org\r\nSubject: ${tag}\r\n\r\n${tag}\r\n`);
}

/** Send until the MX answers 250; returns the temporary failures seen on the way. */
async function sendUntilAccepted(
  port: number,
  tag: string,
  onRefusal: (reply: string) => void = () => {},
): Promise<string[]> {
  const refusals: string[] = [];
  for (;;) {
    try {
      await sendMail({ port, from: 's@sender.test', to: ['alice@example.org'], raw: message(tag) });
      return refusals;
    } catch (err) {
      // A 5xx is final; a 4xx or a broken connection means "try again later", as for any MTA.
      const reply = (err as { response?: string }).response ?? String(err);
      if (/^5\d\d /.test(reply)) throw err;
      refusals.push(reply);
      onRefusal(reply);
      await new Promise((r) => setTimeout(r, 100)); // a client's retry interval, not a wait for an event
    }
  }
}

/** How many copies of each tag reached the sink. */
function copies(sink: SmtpSink): Map<string, number> {
  const counts = new Map<string, number>();
  for (const m of sink.messages) counts.set(tagOf(m.raw), (counts.get(tagOf(m.raw)) ?? 0) + 1);
  return counts;
}

async function streamMessages(rt: Runtime, name: string): Promise<number> {
  const jsm = await jetstreamManager(rt.bus.nc);
  return (await jsm.streams.info(name)).state.messages;
}

async function metric(rt: Runtime, line: RegExp): Promise<number> {
  const text = await rt.metrics.registry.metrics();
  const m = line.exec(text);
  return m ? Number(m[1]) : 0;
}

test('a full deliver stream holds the rewriter (backpressure): nothing dead-lettered, all flows once room is made', async (t) => {
  // maxDeliver 3 and a 1 s ack wait: were a full stream counted as a failure, the held
  // messages would reach the dead-letter stream within seconds.
  const bed = await startBed({
    bus: { maxDeliver: 3, ackWait: 1, queueLifetime: 60, retentionMargin: 0 },
    egress: { retrySchedule: [60] },
    rewriter: { concurrency: 2 },
  });
  const front = await run(bed, ['ingress', 'filter', 'resolver', 'rewriter']);
  const jsm = await jetstreamManager(front.bus.nc);
  const deliverCfg = (await jsm.streams.info(streams.deliver.name)).config;
  await jsm.streams.update(streams.deliver.name, { ...deliverCfg, max_msgs: 2 });

  const TOTAL = 8;
  const port = ingressPort(front);
  for (let i = 0; i < TOTAL; i++) await sendUntilAccepted(port, `bp-${i}`);
  // The deliver stream is full and the rewriter holds; let the hold outlast maxDeliver x ackWait.
  // (Or for a dead letter, which is the failure this test is about.)
  await waitUntil(
    'the rewriter to hold messages for longer than maxDeliver ack waits (or a dead letter)',
    async () =>
      (await metric(front, /sluice_backpressure_waits_total\{stage="rewriter"\} (\d+)/)) >= 12 ||
      (await streamMessages(front, streams.dead.name)) > 0,
    { timeoutMs: 20_000 },
  );
  assert.equal(await streamMessages(front, streams.deliver.name), 2, 'the deliver stream is full');
  assert.equal(await streamMessages(front, streams.dead.name), 0, 'nothing dead-lettered while full');

  // Make room: the original limit back, and an egress to drain it.
  await jsm.streams.update(streams.deliver.name, deliverCfg);
  const back = await run(bed, ['egress']);
  await bed.sink.waitFor(TOTAL, 20_000);
  await waitForDrainedQueues(back.bus, 20_000);
  const counts = copies(bed.sink);
  const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  t.diagnostic(
    `backpressure: ${TOTAL} accepted, ${bed.sink.messages.length} delivered, duplicates ${duplicates}`,
  );
  for (let i = 0; i < TOTAL; i++) assert.equal(counts.get(`bp-${i}`), 1, `bp-${i} delivered exactly once`);
  assert.equal(await streamMessages(front, streams.dead.name), 0, 'nothing dead-lettered');
  assert.equal(await metric(front, /sluice_dead_lettered_total\{[^}]*\} (\d+)/), 0);
});

test('store budget filled under load, then freed: every accepted message delivered exactly once', async (t) => {
  // A budget of 1 MiB: a few hundred envelopes fill it. The sink defers (451) until the
  // ingress has refused with 452 (the guard, or a full stream), so every stage backs up.
  const bed = await startBed({
    bus: {
      store: { budget: 1024 * 1024, minFreeBytes: 0 },
      ackWait: 2,
      maxDeliver: 400,
      queueLifetime: 300,
      retentionMargin: 0,
    },
    egress: { retrySchedule: [1] },
    resolver: { concurrency: 4 },
    rewriter: { concurrency: 4 },
  });
  let full = false;
  bed.onData = () => (full ? undefined : { code: 451, message: '4.3.0 not now' });
  const rt = await run(bed, ['ingress', 'filter', 'resolver', 'rewriter', 'egress']);
  const port = ingressPort(rt);
  const limits = rt.bus.storeLimits;
  assert.equal(limits.budgetBytes, 1024 * 1024);

  let next = 0;
  let refused452 = 0;
  const accepted: string[] = [];
  const sender = async () => {
    while (!full) {
      const tag = `load-${next++}`;
      await sendUntilAccepted(port, tag, (reply) => {
        if (!reply.startsWith('452 4.3.1')) return;
        refused452++;
        full = true; // the store is full: from now on the sink accepts, and room is made
      });
      accepted.push(tag);
    }
  };
  await Promise.all(Array.from({ length: 8 }, sender));
  assert.ok(refused452 > 0, 'the ingress answered 452 4.3.1 while the store was full');

  await waitUntil(
    'every accepted message at the sink',
    async () => {
      const seen = copies(bed.sink);
      return accepted.every((tag) => seen.has(tag));
    },
    { timeoutMs: 30_000 },
  ).catch(async (err: Error) => {
    const seen = copies(bed.sink);
    const lags = await Promise.all(Object.values(consumers).map((c) => rt.bus.consumerLag(c)));
    const counts = await Promise.all(Object.values(consumers).map((c) => streamMessages(rt, c.stream)));
    throw new Error(
      `${err.message}; missing ${accepted.filter((tag) => !seen.has(tag)).length} of ${accepted.length}; lags ${JSON.stringify(lags)} streams ${counts}`,
    );
  });
  await waitForDrainedQueues(rt.bus, 30_000);
  const counts = copies(bed.sink);
  const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  t.diagnostic(
    `store full: ${accepted.length} accepted, ${refused452} answers 452, ${bed.sink.messages.length} delivered, duplicates ${duplicates}`,
  );
  for (const tag of accepted) assert.equal(counts.get(tag), 1, `${tag} delivered exactly once`);
  assert.equal(await streamMessages(rt, streams.dead.name), 0, 'nothing dead-lettered');
});

test('nats-server killed as the sink answers 250: no second copy, the work queues drain to zero', async (t) => {
  const bed = await startBed({
    // A delivery deferred by the outage (a session or a body read cut by the kill) is retried
    // after 1 s, not the default schedule's minutes, so the queues can drain within the test.
    bus: { ackWait: 2, publishTimeout: 3, maxDeliver: 400, queueLifetime: 300 },
    egress: { concurrency: 4, retrySchedule: [1] },
    // A request lost in the outage is answered 451 after this, and the client sends again.
    ingress: { listen: [{ host: '127.0.0.1', port: 0 }], filterTimeout: 3 },
  });
  const rt = await run(bed, ['ingress', 'filter', 'resolver', 'rewriter', 'egress']);
  const port = ingressPort(rt);
  const node = bed.nats.nodes[0]!;
  const KILLS = 3;
  let kills = 0;
  let killing: Promise<void> | undefined;
  // The kill lands between the sink's 250 and the egress' ledger write: the worst moment.
  bed.onData = () => {
    if (!killing && kills < KILLS && bed.sink.messages.length >= 5 * (kills + 1)) {
      kills++;
      killing = node
        .kill()
        .then(() => node.restart())
        .finally(() => {
          killing = undefined;
        });
    }
    return undefined;
  };
  const TOTAL = 40;
  const accepted: string[] = [];
  let next = 0;
  const sender = async () => {
    while (next < TOTAL) {
      const tag = `kill-${next++}`;
      await sendUntilAccepted(port, tag);
      accepted.push(tag);
      await killing;
    }
  };
  await Promise.all(Array.from({ length: 4 }, sender));
  await killing;
  await waitUntil(
    'every accepted message at the sink',
    () => accepted.every((tag) => copies(bed.sink).has(tag)),
    { timeoutMs: 30_000 },
  );
  // Everything is at the sink. A CI run once saw 1 message still queued at 30 s; the likely
  // cause is a redelivered copy whose handler failed during an outage: its nak delay doubles with
  // its delivery count (2^(n-1) s, consume.ts), which ackWait 2 s raises during each outage. It
  // must still drain, and (below) without a second copy reaching the sink; the failure names where it waits.
  await waitForDrainedQueues(rt.bus, 90_000);
  // Acked messages a crashed nats-server 2.9 left in a work stream are removed by the runtime's
  // queue watcher (every 5 s): every work stream ends empty.
  let left: number[] = [];
  await waitUntil(
    () => `every work stream empty (messages left: ${left})`,
    async () => {
      left = await Promise.all(Object.values(consumers).map((c) => streamMessages(rt, c.stream)));
      return left.every((n) => n === 0);
    },
    { timeoutMs: 15_000 },
  );
  // The runtime's queue depth gauge follows (it polls every 5 s).
  await waitUntil(
    'the queue depth gauge at zero for every stream',
    async () => {
      const values = (await rt.metrics.queueDepth.get()).values;
      return values.length === 3 && values.every((v) => v.value === 0);
    },
    { timeoutMs: 15_000 },
  );
  const counts = copies(bed.sink);
  const duplicates = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  t.diagnostic(
    `nats killed ${kills}x after a remote 250: ${accepted.length} accepted, ${bed.sink.messages.length} delivered, duplicates ${duplicates}`,
  );
  assert.equal(kills, KILLS);
  for (const tag of accepted) assert.equal(counts.get(tag), 1, `${tag} delivered exactly once`);
});
