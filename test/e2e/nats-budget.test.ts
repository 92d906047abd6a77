/**
 * The NATS budget of one message (docs/decisions/0010, 0046): every stage in
 * one process like `sluice run`, a real nats-server, a real SMTP sink; one
 * message to one recipient that the resolver forwards. The bus counts every
 * NATS operation by kind and stage (and the in-process handovers that replace
 * some of them) and the round trips each stage waited on one after another;
 * after a warm-up message, the second message must cost exactly the budget
 * below. Two shapes: the default, where stages of one process hand over to
 * each other without NATS where that is safe (in-process-handover.ts), and
 * `bus.inProcessHandover: false`, which is what each stage costs when it runs
 * alone (a process per service). A change in what a message costs fails here
 * and has to be argued in the decision record.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { NatsOperationsSnapshot } from '@sluice/bus';
import type { Runtime } from '@sluice/runtime';
import { type SmtpSink, sendMail, waitUntil } from '@sluice/test-harness';
import { type Pipeline, startPipeline } from './helpers.ts';

interface Budget {
  /** Operations of one 1-recipient forwarded message, per stage and kind. */
  operations: Record<string, Record<string, number>>;
  /** NATS operations in all (handovers and in-process requests are not). */
  natsTotal: number;
  /** Round trips each stage waits on one after another. */
  roundTrips: Record<string, number>;
}

/** Every hop over NATS: what the stages cost deployed apart. */
const OVER_NATS: Budget = {
  operations: {
    // RCPT lookup and the filter's verdict (requests), 'received', the dedup index note (one-way),
    // the resolve stream (awaited).
    ingress: { request: 2, publish_event: 1, publish_note: 1, publish_durable: 1 },
    filter: { reply: 1, publish_event: 1 },
    // The RCPT lookup's answer comes from the resolver too.
    resolver: { reply: 1, publish_event: 1, publish_durable: 1, ack: 1 },
    rewriter: { publish_event: 1, publish_durable: 1, ack: 1 },
    egress: { kv_get: 1, kv_put: 1, publish_event: 1, ack: 1 },
  },
  natsTotal: 18,
  // RCPT lookup, verdict, PubAck; PubAck; PubAck; ledger read, ledger write.
  roundTrips: { ingress: 3, resolver: 1, rewriter: 1, egress: 2 },
};

/** One process (the default): the two requests answered in process, the part handed to the rewriter. */
const IN_PROCESS: Budget = {
  operations: {
    // The two requests answered in process; 'received' and the filter's 'verdict' are one event
    // message (recorded in one turn, counted under the earlier: event-log.ts).
    ingress: { local_request: 2, publish_event: 1, publish_note: 1, publish_durable: 1 },
    // No rewrite-stream write: the rewriter ran in the resolver's path and published to deliver;
    // its 'rewritten' event went out with the resolver's 'resolved' (one turn, one message).
    resolver: { publish_event: 1, ack: 1 },
    rewriter: { handover: 1, publish_durable: 1 },
    egress: { kv_get: 1, kv_put: 1, publish_event: 1, ack: 1 },
  },
  natsTotal: 10,
  // The resolve PubAck; the deliver PubAck (waited in the rewriter's path, inside the resolver's);
  // ledger read, ledger write.
  roundTrips: { ingress: 1, rewriter: 1, egress: 2 },
};

const STAGES = Object.keys(OVER_NATS.operations);
const NOT_NATS = new Set(['handover', 'local_request']);

type Counts = Record<string, Record<string, number>>;

function put(c: Counts, stage: string, kind: string, n: number): void {
  c[stage] = { ...c[stage], [kind]: n };
}

/** Operations per stage and kind, pipeline stages only. */
function byStage(s: NatsOperationsSnapshot): Counts {
  const out: Counts = {};
  for (const o of s.operations) {
    if (!STAGES.includes(o.stage)) continue;
    put(out, o.stage, o.kind, o.count);
  }
  return out;
}

function minus(a: Counts, b: Counts): Counts {
  const out: Counts = {};
  for (const [stage, kinds] of Object.entries(a)) {
    for (const [kind, n] of Object.entries(kinds)) {
      const d = n - (b[stage]?.[kind] ?? 0);
      if (d !== 0) put(out, stage, kind, d);
    }
  }
  return out;
}

function roundTrips(s: NatsOperationsSnapshot): Record<string, number> {
  return Object.fromEntries(
    s.roundTrips.filter((r) => STAGES.includes(r.stage)).map((r) => [r.stage, r.count]),
  );
}

const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);

/** Send one forwarded message and wait until the egress has acked it (its last NATS operation). */
async function forwardOne(rt: Runtime, port: number, sink: SmtpSink, tag: string): Promise<void> {
  const acksBefore = byStage(rt.bus.operations.snapshot()).egress?.ack ?? 0;
  const raw = Buffer.from(
    `From: <sender@sender.test>\r\nTo: <alice@example.org>\r\nSubject: ${tag}\r\nMessage-ID: <${tag}@sender.test>\r\n\r\nbody of ${tag}\r\n`,
  );
  await sendMail({ port, from: 'sender@sender.test', to: ['alice@example.org'], raw });
  await sink.waitFor((m) => m.raw.includes(Buffer.from(`Subject: ${tag}`)), 20_000);
  await waitUntil(
    'the egress to ack the message',
    () => (byStage(rt.bus.operations.snapshot()).egress?.ack ?? 0) > acksBefore,
  );
}

function budgetCase(name: string, bus: Record<string, unknown>, budget: Budget): void {
  describe(name, () => {
    let pipeline: Pipeline;
    before(async () => {
      pipeline = await startPipeline(
        'budget',
        [{ name: 'sender.test', type: 'TXT', data: 'v=spf1 ip4:127.0.0.1 -all' }],
        (sink) => ({
          domains: { primary: 'example.org' },
          routing: { forwards: { 'alice@example.org': ['alice@forward.test'] } },
          transports: { 'forward.test': { host: '127.0.0.1', port: sink.port } },
          bus,
        }),
      );
    });
    after(async () => {
      await pipeline?.stop();
    });

    test('one forwarded message costs exactly the budget', async () => {
      const { rt, port, sink } = pipeline;
      await forwardOne(rt, port, sink, 'warm-up'); // consumers bound, buckets opened, pulls outstanding
      const before = rt.bus.operations.snapshot();
      await forwardOne(rt, port, sink, 'measured');
      const after = rt.bus.operations.snapshot();

      const spent = minus(byStage(after), byStage(before));
      assert.deepEqual(
        spent,
        budget.operations,
        `operations of one message by stage: ${JSON.stringify(spent)}`,
      );
      const nats = Object.values(spent).flatMap((k) =>
        Object.entries(k)
          .filter(([kind]) => !NOT_NATS.has(kind))
          .map(([, n]) => n),
      );
      assert.equal(sum(nats), budget.natsTotal);
      // None of the operations that hold the message path for a confirmation of an ack.
      assert.ok(!Object.values(spent).some((k) => 'ack_confirmed' in k));

      const trips = Object.fromEntries(
        Object.entries(roundTrips(after))
          .map(([stage, n]) => [stage, n - (roundTrips(before)[stage] ?? 0)] as const)
          .filter(([, n]) => n > 0),
      );
      assert.deepEqual(trips, budget.roundTrips, `round trips by stage: ${JSON.stringify(trips)}`);
    });

    test('the counts are exported on /metrics-style Prometheus counters', async () => {
      const { rt } = pipeline;
      const text = await rt.metrics.registry.metrics();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('sluice_nats_operations_total{kind="publish_durable",stage="rewriter"}'));
      assert.ok(line, 'a publish_durable counter for the rewriter');
      const exported = Number(line.split(' ').at(-1));
      const counted = rt.bus.operations
        .snapshot()
        .operations.find((o) => o.kind === 'publish_durable' && o.stage === 'rewriter')?.count;
      assert.equal(exported, counted);
      assert.ok(exported >= 2, 'both messages of the budget test were counted');
      assert.match(text, /^sluice_nats_round_trips_total\{stage="egress"\} \d+/m);
    });
  });
}

budgetCase('stages in one process (bus.inProcessHandover, the default)', {}, IN_PROCESS);
budgetCase(
  'every hop over NATS (bus.inProcessHandover: false; a stage deployed alone)',
  { inProcessHandover: false },
  OVER_NATS,
);
