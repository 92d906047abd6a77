/**
 * The Prometheus instruments of a Sluice process, in one registry served at
 * /metrics. Names follow the Prometheus conventions: one `sluice_` prefix,
 * base units (seconds), `_total` for counters, and only low-cardinality labels
 * (stage, outcome, reason, action — never an address or an IP). Default
 * process and Node.js metrics (CPU, memory, event-loop lag) come along.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export interface Metrics {
  readonly registry: Registry;
  /** Messages accepted (250) by source: mx, submission, relay, bounce. */
  readonly received: Counter<'source'>;
  /** Messages or recipients refused, by stage and reason (e.g. ingress/size, filter/spf). */
  readonly rejected: Counter<'stage' | 'reason'>;
  /** Envelopes a stage finished, by outcome (ack, retry, dead). */
  readonly stageProcessed: Counter<'stage' | 'outcome'>;
  /** Time a stage spent on one envelope, seconds. */
  readonly stageDuration: Histogram<'stage'>;
  /** Delivery attempts per recipient by outcome: delivered, deferred, failed. */
  readonly deliveries: Counter<'outcome'>;
  /** From the 250 at the ingress to the remote's 250, seconds. */
  readonly deliveryLatency: Histogram;
  /** Filter verdicts by action (accept, reject, tempfail, quarantine). */
  readonly verdicts: Counter<'action'>;
  /** Messages put on the dead-letter stream, by stage. */
  readonly deadLettered: Counter<'stage'>;
  /** Rewriter steps by outcome: srs (rewritten, hash-only, ...), dkim (signed, unsigned-<reason>), arc (sealed, unsealed). */
  readonly rewrites: Counter<'step' | 'outcome'>;
  /** SMTP sessions opened, by service (ingress, submission, relay). */
  readonly smtpSessions: Counter<'service'>;
  /** Messages waiting in a work stream (pending + unacknowledged), filled by the runtime. */
  readonly queueDepth: Gauge<'stream'>;
  /** 1 while the free-space guard refuses new mail (452 4.3.1), else 0. */
  readonly storeGuardTripped: Gauge;
  /** Bytes left above the guard's threshold at its last sample (store disk or budget, the smaller). */
  readonly storeFreeBytes: Gauge;
  /** Deliveries to a recipient that already had one (a duplicate the remote got), by reason. */
  readonly deliveryRepeats: Counter<'reason'>;
  /** Ledger entries the server lost and the egress wrote again from memory (a duplicate avoided). */
  readonly ledgerRestored: Counter;
  /** Delivery status notifications (and forward-failure notices) the egress queued, by action. */
  readonly dsnsQueued: Counter<'action'>;
  /** Times a stage held a message because the next stream was full (backpressure), by stage. */
  readonly backpressureWaits: Counter<'stage'>;
  /** Verdict requests the filter answered busy at once (handler slots and wait queue full). */
  readonly filterShed: Counter;
  /** Verdict requests waiting in this filter process for a handler slot. */
  readonly filterWaiting: Gauge;
  /** The filter's DNS lookups by where the answer came from: cache, shared (a query in flight), query. */
  readonly filterDnsLookups: Counter<'answer'>;
  /** Outbound TLS sessions by policy (dane, mta-sts, none) and result (success or a TLS-RPT failure type, RFC 8460 §4.3). */
  readonly tlsResults: Counter<'policy' | 'result'>;
  /** Egress parts held back without an attempt (delivery queue), by reason: busy, paced, backoff, held. */
  readonly egressPostponed: Counter<'reason'>;
  /** Times a destination was backed off for every egress replica (421, no session, attempt deadline). */
  readonly destinationBackoffs: Counter;
  /** NATS operations of the bus by kind and stage, read from the bus at each scrape (observeNatsOperations). */
  readonly natsOperations: Counter<'kind' | 'stage'>;
  /** NATS round trips messages waited on one after another, by stage (same source). */
  readonly natsRoundTrips: Counter<'stage'>;
  /** Timeline events not stored (no PubAck in time, or an error), by reason (same source). */
  readonly timelineEventsLost: Counter<'reason'>;
  /** Where natsOperations, natsRoundTrips and timelineEventsLost read their values (the bus' counts). */
  observeNatsOperations(source: () => NatsOperationTotals): void;
}

/** The bus' running totals, as the three counters above export them (see @sluice/bus NatsOperations). */
export interface NatsOperationTotals {
  operations: ReadonlyArray<{ kind: string; stage: string; count: number }>;
  roundTrips: ReadonlyArray<{ stage: string; count: number }>;
  eventsLost: ReadonlyArray<{ reason: string; count: number }>;
}

/** Stage work: mostly milliseconds, up to the filter and lookup timeouts. */
const STAGE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Accept to delivery: seconds when all is well, up to the 5-day queue lifetime when it is not. */
const DELIVERY_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400];

export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  // The bus counts in process (no prom-client work per operation); the counters copy its totals when scraped.
  let natsTotals: (() => NatsOperationTotals) | null = null;
  return {
    observeNatsOperations(source) {
      natsTotals = source;
    },
    natsOperations: new Counter({
      name: 'sluice_nats_operations_total',
      help: 'NATS operations made by the bus, by kind (publish_durable, publish_event, ack, request, kv_get, ...) and stage.',
      labelNames: ['kind', 'stage'],
      registers,
      collect() {
        if (!natsTotals) return;
        this.reset();
        for (const o of natsTotals().operations) this.inc({ kind: o.kind, stage: o.stage }, o.count);
      },
    }),
    natsRoundTrips: new Counter({
      name: 'sluice_nats_round_trips_total',
      help: 'NATS round trips messages waited on one after another, by stage.',
      labelNames: ['stage'],
      registers,
      collect() {
        if (!natsTotals) return;
        this.reset();
        for (const r of natsTotals().roundTrips) this.inc({ stage: r.stage }, r.count);
      },
    }),
    timelineEventsLost: new Counter({
      name: 'sluice_timeline_events_lost_total',
      help: 'Timeline events not stored (timeout: no PubAck in time; error; closed: the bus closed first), by reason.',
      labelNames: ['reason'],
      registers,
      collect() {
        if (!natsTotals) return;
        this.reset();
        for (const l of natsTotals().eventsLost) this.inc({ reason: l.reason }, l.count);
      },
    }),
    registry,
    received: new Counter({
      name: 'sluice_messages_received_total',
      help: 'Messages accepted with 250, by source.',
      labelNames: ['source'],
      registers,
    }),
    rejected: new Counter({
      name: 'sluice_messages_rejected_total',
      help: 'Messages or recipients refused, by stage and reason.',
      labelNames: ['stage', 'reason'],
      registers,
    }),
    stageProcessed: new Counter({
      name: 'sluice_stage_processed_total',
      help: 'Envelopes a stage finished, by outcome (ack, retry, dead).',
      labelNames: ['stage', 'outcome'],
      registers,
    }),
    stageDuration: new Histogram({
      name: 'sluice_stage_duration_seconds',
      help: 'Time a stage spent on one envelope.',
      labelNames: ['stage'],
      buckets: STAGE_BUCKETS,
      registers,
    }),
    deliveries: new Counter({
      name: 'sluice_deliveries_total',
      help: 'Delivery attempts per recipient, by outcome (delivered, deferred, failed).',
      labelNames: ['outcome'],
      registers,
    }),
    deliveryLatency: new Histogram({
      name: 'sluice_delivery_latency_seconds',
      help: 'Time from acceptance (250 at the ingress) to delivery.',
      buckets: DELIVERY_BUCKETS,
      registers,
    }),
    verdicts: new Counter({
      name: 'sluice_verdicts_total',
      help: 'Before-queue filter verdicts, by action.',
      labelNames: ['action'],
      registers,
    }),
    deadLettered: new Counter({
      name: 'sluice_dead_lettered_total',
      help: 'Messages put on the dead-letter stream, by stage.',
      labelNames: ['stage'],
      registers,
    }),
    rewrites: new Counter({
      name: 'sluice_rewrites_total',
      help: 'Rewriter steps (srs, dkim, arc) by outcome.',
      labelNames: ['step', 'outcome'],
      registers,
    }),
    smtpSessions: new Counter({
      name: 'sluice_smtp_sessions_total',
      help: 'SMTP sessions opened, by service.',
      labelNames: ['service'],
      registers,
    }),
    queueDepth: new Gauge({
      name: 'sluice_queue_depth',
      help: 'Messages waiting in a work stream (pending and unacknowledged).',
      labelNames: ['stream'],
      registers,
    }),
    storeGuardTripped: new Gauge({
      name: 'sluice_store_guard_tripped',
      help: '1 while the free-space guard refuses new mail with 452 4.3.1.',
      registers,
    }),
    storeFreeBytes: new Gauge({
      name: 'sluice_store_free_bytes',
      help: 'Bytes of JetStream store left above the free-space guard threshold.',
      registers,
    }),
    deliveryRepeats: new Counter({
      name: 'sluice_delivery_repeats_total',
      help: 'Deliveries to a recipient that had already been delivered (duplicates), by reason.',
      labelNames: ['reason'],
      registers,
    }),
    tlsResults: new Counter({
      name: 'sluice_tls_results_total',
      help: 'Outbound TLS policy results (RFC 8460 TLS-RPT result types), by policy and result.',
      labelNames: ['policy', 'result'],
      registers,
    }),
    ledgerRestored: new Counter({
      name: 'sluice_ledger_restored_total',
      help: 'Ledger entries lost by the server and written again by the egress (duplicates avoided).',
      registers,
    }),
    dsnsQueued: new Counter({
      name: 'sluice_dsns_queued_total',
      help: 'Recipients reported in DSNs (and forward-failure notices) the egress queued, by action.',
      labelNames: ['action'],
      registers,
    }),
    backpressureWaits: new Counter({
      name: 'sluice_backpressure_waits_total',
      help: 'Times a stage held a message because the next stream was full, by stage.',
      labelNames: ['stage'],
      registers,
    }),
    filterShed: new Counter({
      name: 'sluice_filter_shed_total',
      help: 'Verdict requests the filter answered busy at once (handler slots and wait queue full).',
      registers,
    }),
    egressPostponed: new Counter({
      name: 'sluice_egress_postponed_total',
      help: 'Egress parts held back without an attempt by the delivery queue, by reason (busy, paced, backoff, held).',
      labelNames: ['reason'],
      registers,
    }),
    destinationBackoffs: new Counter({
      name: 'sluice_destination_backoffs_total',
      help: 'Times a destination was backed off for every egress replica (421, no session, attempt deadline).',
      registers,
    }),
    filterWaiting: new Gauge({
      name: 'sluice_filter_waiting_requests',
      help: 'Verdict requests waiting in this filter process for a handler slot.',
      registers,
    }),
    filterDnsLookups: new Counter({
      name: 'sluice_filter_dns_lookups_total',
      help: "The filter's DNS lookups by where the answer came from: cache, shared (a query in flight), query (asked the servers).",
      labelNames: ['answer'],
      registers,
    }),
  };
}
