/**
 * `Bus`: the BusClient services use, over one NATS connection. It wires the
 * single-purpose modules together (connect, topology, body store, publish,
 * consume, RPC, timeline, dead letters, ledger) and owns their lifecycle:
 * close() stops every consumer and RPC server it started (in-flight work
 * finishes and is settled), waits for the timeline events still in flight,
 * then drains the connection.
 *
 * Every NATS operation is counted in `operations` (nats-operations.ts) with
 * the stage it was made for: services get a view of the bus bound to their
 * stage (`forStage`, stage-bus.ts); calls on the Bus itself count as stage
 * "none" unless the call names its stage.
 */
import type { Readable } from 'node:stream';
import { type JetStreamClient, type JetStreamManager, jetstream } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type ObjectStore, Objm } from '@nats-io/obj';
import type { NatsConnection } from '@nats-io/transport-node';
import { trace } from '@opentelemetry/api';
import {
  type BodyRef,
  buckets,
  type ConsumerSpec,
  type Envelope,
  eventBase,
  objectStores,
  type SluiceEvent,
  type StageName,
} from '@sluice/proto';
import { removeAckedLeftovers } from './acked-leftovers.ts';
import { holdWhileFull } from './backpressure.ts';
import { deleteBody, inlineLimit, loadBody, openBody, storeBody, storeBodyStream } from './body-store.ts';
import { type BusLog, silentBusLog } from './bus-log.ts';
import type { BusConfig } from './config.ts';
import { closeConnection, connectNats } from './connect.ts';
import { ConnectionState } from './connection-state.ts';
import { type ConsumeOptions, consumeEnvelopes } from './consume.ts';
import { deadLetter } from './dead-letter.ts';
import { firstQueueIdOf, noteDedupId } from './dedup-index.ts';
import { EventLog } from './event-log.ts';
import { greylistCreate, greylistGet, greylistUpdate } from './greylist-store.ts';
import { InProcessHandover } from './in-process-handover.ts';
import { type KvKeyStore, kvOverInbox } from './kv-over-inbox.ts';
import { type StoredSnapshot, snapshotGet, snapshotPut, snapshotWatch } from './ldap-snapshot-store.ts';
import { type LedgerHold, ledgerGet, ledgerPut, ledgerPutHeld } from './ledger.ts';
import { NatsOperations, NO_STAGE } from './nats-operations.ts';
import { publishEnvelope } from './publish.ts';
import { type ConsumerLag, consumerLag, readTimeline, streamReplicas } from './queue-inspection.ts';
import { ReplyInbox } from './reply-inbox.ts';
import { request, serve } from './rpc.ts';
import { countSession } from './session-rate-store.ts';
import { type SharedTable, sharedTable } from './shared-table.ts';
import { StageBus } from './stage-bus.ts';
import { RESERVE_SHARE, type StoreLimits } from './store-budget.ts';
import { StoreGuard, type StoreRoom } from './store-guard.ts';
import { ensureTopology, limitsOf, type TopologyReport } from './topology.ts';
import { headersToRecord } from './trace-headers.ts';
import type {
  AuthBuckets,
  BusClient,
  EnvelopeHandler,
  LedgerEntry,
  PublishHold,
  RpcRequest,
  RpcServeOptions,
  RpcServer,
  SharedTableBucket,
  StageConsumer,
  StoredBody,
} from './types.ts';

/** NATS' default max_payload, used only if the server has not said otherwise. */
const DEFAULT_MAX_PAYLOAD = 1024 * 1024;

export class Bus implements BusClient {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly config: BusConfig;
  readonly log: BusLog;
  readonly connection: ConnectionState;
  /** Every NATS operation this bus made, by kind and stage, and the round trips messages waited on. */
  readonly operations = new NatsOperations();
  readonly #events: EventLog;
  /** Requests and JetStream publishes, with their replies on one subscription. */
  readonly #inbox: ReplyInbox;
  readonly #ready = (timeoutMs: number): Promise<boolean> => this.connection.ready(timeoutMs);
  #jsm: Promise<JetStreamManager> | null = null;
  #bodies: Promise<ObjectStore> | null = null;
  /** The delivery ledger's bucket, read and written through the reply inbox (kv-over-inbox.ts). */
  readonly #ledger: KvKeyStore;
  #greylist: Promise<KV> | null = null;
  readonly #stoppables = new Set<{ stop(): Promise<void> }>();
  #closing: Promise<void> | null = null;
  /** The limits the topology was declared with (from the config until ensureTopology ran). */
  #limits: StoreLimits;
  readonly #guard: StoreGuard;
  /** Stages of this process handing messages to each other without NATS (bus.inProcessHandover). */
  readonly #handover: InProcessHandover | undefined;

  private constructor(nc: NatsConnection, config: BusConfig, log: BusLog) {
    this.nc = nc;
    this.js = jetstream(nc, { timeout: config.publishTimeoutMs });
    this.config = config;
    this.log = log;
    this.connection = new ConnectionState(nc, log);
    this.#limits = limitsOf(config);
    this.#guard = new StoreGuard({
      minFreeBytes: config.storeMinFreeBytes,
      storeDir: config.storeDir,
      budgetBytes: () => this.#limits.budgetBytes,
      reserveBytes: () => Math.floor(this.#limits.budgetBytes * RESERVE_SHARE),
      jsm: () => this.#manager(),
      log,
    });
    this.#inbox = new ReplyInbox(nc);
    this.#ledger = kvOverInbox(this.#inbox, buckets.deliveryLedger, config.publishTimeoutMs);
    this.#handover = config.inProcessHandover ? new InProcessHandover(log, this.operations) : undefined;
    this.#events = new EventLog(nc, log, this.operations, {
      timeoutMs: config.publishTimeoutMs,
      ready: this.#ready,
    });
  }

  /** A view of this bus for one service: its NATS operations are counted under `stage`. */
  forStage(stage: StageName): BusClient {
    return new StageBus(this, stage);
  }

  static async connect(config: BusConfig, log: BusLog = silentBusLog): Promise<Bus> {
    return new Bus(await connectNats(config), config, log);
  }

  /** Declare streams, consumers, the ledger bucket and the body store (idempotent). */
  async ensureTopology(): Promise<TopologyReport> {
    const report = await ensureTopology(this.nc, this.config, this.log);
    this.#limits = report.limits;
    return report;
  }

  /** The limits of every stream, bucket and object store (store-budget.ts). */
  get storeLimits(): StoreLimits {
    return this.#limits;
  }

  /** The free-space guard's verdict: may new mail be taken (store-guard.ts)? */
  storeRoom(): Promise<StoreRoom> {
    return this.#guard.room();
  }

  get maxPayload(): number {
    return this.nc.info?.max_payload ?? DEFAULT_MAX_PAYLOAD;
  }

  /** The largest body that travels inline with the current server. */
  get inlineLimit(): number {
    return inlineLimit(this.config.inlineMaxBytes, this.maxPayload);
  }

  readonly #openBodies = (): Promise<ObjectStore> => {
    this.#bodies ??= new Objm(this.js).open(objectStores.bodies).catch((err) => {
      this.#bodies = null;
      throw err;
    });
    return this.#bodies;
  };

  storeBody(queueId: string, body: Uint8Array, stage: string = NO_STAGE): Promise<StoredBody> {
    if (body.length <= this.inlineLimit) {
      return storeBody(this.#openBodies, queueId, body, this.inlineLimit, this.config.publishTimeoutMs);
    }
    return this.operations.awaited('object_put', stage, () =>
      storeBody(this.#openBodies, queueId, body, this.inlineLimit, this.config.publishTimeoutMs),
    );
  }

  storeBodyStream(
    queueId: string,
    chunks: AsyncIterable<Uint8Array>,
    stage: string = NO_STAGE,
  ): Promise<StoredBody> {
    return this.operations.awaited('object_put', stage, () =>
      storeBodyStream(this.#openBodies, queueId, chunks, this.config.publishTimeoutMs),
    );
  }

  loadBody(env: Envelope, inline?: Uint8Array, stage: string = NO_STAGE): Promise<Uint8Array> {
    if (env.body.kind === 'inline') return loadBody(this.#openBodies, env, inline);
    return this.operations.awaited('object_get', stage, () => loadBody(this.#openBodies, env, inline));
  }

  openBody(env: Envelope, inline?: Uint8Array, stage: string = NO_STAGE): Promise<Readable> {
    if (env.body.kind === 'inline') return openBody(this.#openBodies, this.js, env, inline);
    return this.operations.awaited('object_get', stage, () =>
      openBody(this.#openBodies, this.js, env, inline),
    );
  }

  deleteBody(ref: BodyRef, stage: string = NO_STAGE): Promise<void> {
    if (ref.kind !== 'object') return Promise.resolve();
    return this.operations.awaited('object_delete', stage, () => deleteBody(this.#openBodies, ref));
  }

  publishEnvelope(
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    opts: { msgId: string; whileFull?: PublishHold; stage?: string },
  ): Promise<{ seq: number; duplicate: boolean }> {
    const handover = this.#handover;
    if (handover?.takes(subject)) {
      // A consumer of `subject` runs in this process and took it: no stream write (seq 0).
      return handover
        .handOver(subject, env, inline, opts.whileFull)
        .then((taken) =>
          taken ? { seq: 0, duplicate: false } : this.#publishEnvelope(subject, env, inline, opts),
        );
    }
    return this.#publishEnvelope(subject, env, inline, opts);
  }

  #publishEnvelope(
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    opts: { msgId: string; whileFull?: PublishHold; stage?: string },
  ): Promise<{ seq: number; duplicate: boolean }> {
    const once = () =>
      this.operations.awaited('publish_durable', opts.stage ?? NO_STAGE, () =>
        publishEnvelope(this.#inbox, subject, env, inline, {
          msgId: opts.msgId,
          timeoutMs: this.config.publishTimeoutMs,
          ready: this.#ready,
        }),
      );
    if (!opts.whileFull) return once();
    return holdWhileFull(once, opts.whileFull, {
      log: this.log,
      subject,
      queueId: env.id,
      maxPauseMs: Math.max(100, Math.floor(this.config.ackWaitMs / 3)),
    });
  }

  /**
   * With `opts.handover`, publishes to the consumer's subject from this process run `handler`
   * directly (in-process-handover.ts); the consumer still pulls whatever reaches the stream.
   */
  consumeEnvelopes(
    spec: ConsumerSpec,
    opts: ConsumeOptions & { handover?: boolean },
    handler: EnvelopeHandler,
  ): StageConsumer {
    const withdraw =
      opts.handover && this.#handover
        ? this.#handover.addConsumer(spec.filterSubject, spec, handler)
        : undefined;
    const consumer = consumeEnvelopes(
      {
        nc: this.nc,
        js: this.js,
        log: this.log,
        ops: this.operations,
        maxDeliver: this.config.maxDeliver,
        ackTimeoutMs: this.config.publishTimeoutMs,
        ready: this.#ready,
        deadLetter: (stage, reason, data, headers) => this.deadLetter(stage, reason, data, headers),
        noteDeadLettered: (env, stage, reason) => this.#noteDeadLettered(env, stage, reason),
      },
      spec,
      opts,
      handler,
    );
    if (!withdraw) return this.#track(consumer);
    return this.#track({
      // Withdrawn first, so new publishes go to the stream while the running ones finish.
      stop: () => withdraw().then(() => consumer.stop()),
    });
  }

  serve(
    subject: string,
    queue: string,
    opts: RpcServeOptions,
    handler: (req: RpcRequest) => Promise<Uint8Array>,
  ): RpcServer {
    const server = serve(this.nc, this.log, this.operations, subject, queue, opts, handler);
    const withdraw = this.#handover?.addResponder(subject, { answer: server.answerInProcess });
    if (!withdraw) return this.#track(server);
    return this.#track({
      stop: () => {
        withdraw();
        return server.stop();
      },
    });
  }

  request(
    subject: string,
    data: Uint8Array,
    timeoutMs: number,
    stage: string = NO_STAGE,
  ): Promise<Uint8Array> {
    const local = this.#handover?.request(subject, data, timeoutMs, stage);
    if (local) return local;
    return request(this.#inbox, subject, data, timeoutMs, this.#ready, (op) =>
      this.operations.awaited('request', stage, op),
    );
  }

  /** Publish a timeline event without waiting for it to be stored (event-log.ts); never throws. */
  recordEvent(event: SluiceEvent): Promise<void> {
    return this.#events.record(event);
  }

  /** Resolves when every timeline event recorded so far is stored or counted lost (bounded by the publish timeout). */
  eventsSettled(): Promise<void> {
    return this.#events.settle();
  }

  /** Run one stage's handling of one message as a message path (its round trips are counted). */
  inPath<T>(stage: string, fn: () => Promise<T>): Promise<T> {
    return this.operations.path(stage, fn);
  }

  messagePath<T>(fn: () => Promise<T>): Promise<T> {
    return this.operations.path(NO_STAGE, fn);
  }

  deadLetter(
    stage: StageName,
    reason: string,
    data: Uint8Array,
    headers?: Record<string, string>,
  ): Promise<void> {
    return this.operations.awaited('publish_durable', stage, () =>
      deadLetter(this.#inbox, stage, reason, data, headers, this.config.publishTimeoutMs, this.#ready),
    );
  }

  ledgerGet(key: string, stage: string = NO_STAGE): Promise<LedgerEntry | null> {
    return this.operations.awaited('kv_get', stage, () => ledgerGet(this.#ledger, key));
  }

  /**
   * Write a final outcome unless the key has one (ledger.ts ledgerPut: null,
   * or the earlier entry), durable before it resolves. With `hold`, a failed
   * write is retried through reconnects and full storage until it succeeds
   * (ledger.ts ledgerPutHeld); without, the first failure is thrown.
   */
  async ledgerPut(
    key: string,
    entry: LedgerEntry,
    opts: { hold?: LedgerHold; stage?: string } = {},
  ): Promise<LedgerEntry | null> {
    const once = async () => {
      // A write sent while disconnected is dropped by the client: wait for the connection first.
      if (!(await this.#ready(this.config.publishTimeoutMs))) {
        throw new Error('NATS disconnected: ledger write not sent');
      }
      return this.operations.awaited('kv_put', opts.stage ?? NO_STAGE, () =>
        ledgerPut(this.#ledger, key, entry),
      );
    };
    if (!opts.hold) return once();
    return ledgerPutHeld(once, opts.hold, {
      maxPauseMs: Math.max(100, Math.min(2000, Math.floor(this.config.ackWaitMs / 3))),
      graceMs: this.config.publishTimeoutMs,
    });
  }

  /** Note that `queueId` is published under the dedup id `msgId` (dedup-index.ts); fire and forget. */
  noteDedupId(
    msgId: string,
    entry: { queueId: string; duplicateOf?: string },
    stage: string = NO_STAGE,
  ): void {
    if (!this.connection.connected || this.nc.isClosed()) return; // lost anyway: the client drops it
    this.operations.count('publish_note', stage);
    noteDedupId(this.nc, msgId, entry);
  }

  /** The queue id of the first copy published under `msgId`, seen from its duplicate `queueId`. */
  async firstQueueIdOf(
    msgId: string,
    queueId: string,
    stage: string = NO_STAGE,
  ): Promise<string | undefined> {
    this.operations.count('api', stage);
    return firstQueueIdOf(await this.#manager(), msgId, queueId);
  }

  #greylistBucket(): Promise<KV> {
    this.#greylist ??= new Kvm(this.js).open(buckets.greylist).catch((err) => {
      this.#greylist = null;
      throw err;
    });
    return this.#greylist;
  }

  async greylistGet(key: string): Promise<{ value: string; revision: number } | null> {
    return greylistGet(await this.#greylistBucket(), key);
  }

  async greylistCreate(key: string, value: string): Promise<boolean> {
    return greylistCreate(await this.#greylistBucket(), key, value);
  }

  async greylistUpdate(key: string, value: string, revision: number): Promise<boolean> {
    return greylistUpdate(await this.#greylistBucket(), key, value, revision);
  }

  #sessionRate: Promise<KV> | null = null;

  /** Count one session of `key` (a client in a minute) in the shared bucket; the count so far. */
  async countIngressSession(key: string, stage: string = NO_STAGE): Promise<number> {
    this.#sessionRate ??= new Kvm(this.js).open(buckets.ingressSessionRate).catch((err) => {
      this.#sessionRate = null;
      throw err;
    });
    // A read and a compare-and-set write (more when another replica wins a round).
    this.operations.count('kv_get', stage);
    this.operations.count('kv_put', stage);
    return countSession(await this.#sessionRate, key);
  }

  #rates: Promise<KV> | null = null;

  #ratesBucket(): Promise<KV> {
    this.#rates ??= new Kvm(this.js).open(buckets.submissionRates).catch((err) => {
      this.#rates = null;
      throw err;
    });
    return this.#rates;
  }

  // Rate counters are compare-and-set records like greylist triplets: the same store functions.
  async rateCounterGet(
    key: string,
    stage: string = NO_STAGE,
  ): Promise<{ value: string; revision: number } | null> {
    const kv = await this.#ratesBucket();
    return this.operations.awaited('kv_get', stage, () => greylistGet(kv, key));
  }

  async rateCounterCreate(key: string, value: string, stage: string = NO_STAGE): Promise<boolean> {
    const kv = await this.#ratesBucket();
    return this.operations.awaited('kv_put', stage, () => greylistCreate(kv, key, value));
  }

  async rateCounterUpdate(
    key: string,
    value: string,
    revision: number,
    stage: string = NO_STAGE,
  ): Promise<boolean> {
    const kv = await this.#ratesBucket();
    return this.operations.awaited('kv_put', stage, () => greylistUpdate(kv, key, value, revision));
  }

  #ldapSnapshot: Promise<KV> | null = null;

  #ldapSnapshotBucket(): Promise<KV> {
    this.#ldapSnapshot ??= new Kvm(this.js).open(buckets.ldapSnapshot).catch((err) => {
      this.#ldapSnapshot = null;
      throw err;
    });
    return this.#ldapSnapshot;
  }

  async ldapSnapshotGet(stage: string = NO_STAGE): Promise<StoredSnapshot | null> {
    const kv = await this.#ldapSnapshotBucket();
    return this.operations.awaited('kv_get', stage, () => snapshotGet(kv));
  }

  async ldapSnapshotPut(
    value: Uint8Array,
    expectedRevision: number,
    stage: string = NO_STAGE,
  ): Promise<number | null> {
    const kv = await this.#ldapSnapshotBucket();
    return this.operations.awaited('kv_put', stage, () => snapshotPut(kv, value, expectedRevision));
  }

  async ldapSnapshotWatch(
    onSnapshot: (s: StoredSnapshot) => void,
    stage: string = NO_STAGE,
  ): Promise<() => void> {
    this.operations.count('api', stage);
    return snapshotWatch(await this.#ldapSnapshotBucket(), onSnapshot);
  }

  #auth: Promise<AuthBuckets> | null = null;

  /** The submission's credential snapshot and brute-force buckets (libs/credentials uses them directly). */
  authBuckets(stage: string = NO_STAGE): Promise<AuthBuckets> {
    this.operations.count('api', stage);
    const kvm = new Kvm(this.js);
    this.#auth ??= Promise.all([kvm.open(buckets.credentials), kvm.open(buckets.authThrottle)])
      .then(([credentials, throttle]) => ({ credentials, throttle }))
      .catch((err) => {
        this.#auth = null;
        throw err;
      });
    return this.#auth;
  }

  #mtaSts: Promise<KV> | null = null;

  #mtaStsBucket(): Promise<KV> {
    this.#mtaSts ??= new Kvm(this.js).open(buckets.mtaStsPolicies).catch((err) => {
      this.#mtaSts = null;
      throw err;
    });
    return this.#mtaSts;
  }

  /** The cached MTA-STS policy record of a domain (egress mta-sts-source.ts), or null. */
  async mtaStsPolicyGet(domain: string, stage: string = NO_STAGE): Promise<Uint8Array | null> {
    const kv = await this.#mtaStsBucket();
    const e = await this.operations.awaited('kv_get', stage, () => kv.get(domain));
    return e?.operation === 'PUT' ? e.value : null;
  }

  async mtaStsPolicyPut(domain: string, value: Uint8Array, stage: string = NO_STAGE): Promise<void> {
    const kv = await this.#mtaStsBucket();
    await this.operations.awaited('kv_put', stage, () => kv.put(domain, value));
  }

  #tlsReports: Promise<KV> | null = null;

  #tlsReportsBucket(): Promise<KV> {
    this.#tlsReports ??= new Kvm(this.js).open(buckets.tlsReports).catch((err) => {
      this.#tlsReports = null;
      throw err;
    });
    return this.#tlsReports;
  }

  /** TLS-RPT store (egress tls-rpt-store.ts): compare-and-set like the greylist, and key listing. */
  async tlsReportGet(
    key: string,
    stage: string = NO_STAGE,
  ): Promise<{ value: string; revision: number } | null> {
    const kv = await this.#tlsReportsBucket();
    return this.operations.awaited('kv_get', stage, () => greylistGet(kv, key));
  }

  async tlsReportCreate(key: string, value: string, stage: string = NO_STAGE): Promise<boolean> {
    const kv = await this.#tlsReportsBucket();
    return this.operations.awaited('kv_put', stage, () => greylistCreate(kv, key, value));
  }

  async tlsReportUpdate(
    key: string,
    value: string,
    revision: number,
    stage: string = NO_STAGE,
  ): Promise<boolean> {
    const kv = await this.#tlsReportsBucket();
    return this.operations.awaited('kv_put', stage, () => greylistUpdate(kv, key, value, revision));
  }

  async tlsReportKeys(filter: string, stage: string = NO_STAGE): Promise<string[]> {
    const kv = await this.#tlsReportsBucket();
    this.operations.count('api', stage);
    const keys: string[] = [];
    for await (const k of await kv.keys(filter)) keys.push(k);
    return keys;
  }

  readonly #tables = new Map<SharedTableBucket, Promise<KV> | null>();

  #tableBucket(bucket: SharedTableBucket): Promise<KV> {
    let kv = this.#tables.get(bucket);
    if (!kv) {
      kv = new Kvm(this.js).open(buckets[bucket]).catch((err) => {
        this.#tables.delete(bucket);
        throw err;
      });
      this.#tables.set(bucket, kv);
    }
    return kv;
  }

  /** A shared JSON table in one of the egress queue's buckets; its operations count as KV gets/puts. */
  sharedTable<T>(bucket: SharedTableBucket, stage: string = NO_STAGE): SharedTable<T> {
    const table = sharedTable<T>(() => this.#tableBucket(bucket));
    const ops = this.operations;
    return {
      get: (key) => ops.awaited('kv_get', stage, () => table.get(key)),
      put: (key, value) => ops.awaited('kv_put', stage, () => table.put(key, value)),
      update: (key, value, revision) =>
        ops.awaited('kv_put', stage, () => table.update(key, value, revision)),
      delete: (key) => ops.awaited('kv_put', stage, () => table.delete(key)),
      entries: () => {
        ops.count('api', stage);
        return table.entries();
      },
      watch: (onChange) => {
        ops.count('api', stage);
        return table.watch(onChange);
      },
    };
  }

  async streamMessage(
    stream: string,
    seq: number,
    stage: string = NO_STAGE,
  ): Promise<{ data: Uint8Array; headers: Record<string, string> } | null> {
    this.operations.count('api', stage);
    const jsm = await this.#manager();
    try {
      const m = await jsm.streams.getMessage(stream, { seq });
      if (!m) return null;
      return { data: m.data, headers: headersToRecord(m.header) };
    } catch (err) {
      if (/no message found|10037/i.test((err as Error).message)) return null;
      throw err;
    }
  }

  async deleteStreamMessage(stream: string, seq: number, stage: string = NO_STAGE): Promise<boolean> {
    this.operations.count('api', stage);
    const jsm = await this.#manager();
    try {
      return await jsm.streams.deleteMessage(stream, seq, false);
    } catch (err) {
      if (/no message found|10037/i.test((err as Error).message)) return false;
      throw err;
    }
  }

  /** Whether the connection is up now (readiness). */
  isConnected(): boolean {
    return this.connection.connected && !this.nc.isClosed();
  }

  /** The timeline events of one message, in the order they were recorded. */
  async readTimeline(queueId: string): Promise<SluiceEvent[]> {
    this.operations.count('api', NO_STAGE);
    return readTimeline(await this.#manager(), queueId);
  }

  /** The backlog of a stage's durable consumer. */
  async consumerLag(spec: ConsumerSpec): Promise<ConsumerLag> {
    return consumerLag(await this.#manager(), spec);
  }

  /** Remove acked messages a crashed nats-server left in a work stream (acked-leftovers.ts). */
  async removeAckedLeftovers(spec: ConsumerSpec): Promise<number> {
    const removed = await removeAckedLeftovers(await this.#manager(), spec);
    if (removed > 0) {
      this.log.warn(
        { stream: spec.stream, removed },
        'removed messages already acked but left in the work stream (nats-server crash)',
      );
    }
    return removed;
  }

  /** Replicas of each Sluice stream as the server has them. */
  async streamReplicas(): Promise<Record<string, number>> {
    return streamReplicas(await this.#manager());
  }

  #manager(): Promise<JetStreamManager> {
    this.#jsm ??= this.js.jetstreamManager(false).catch((err) => {
      this.#jsm = null;
      throw err;
    });
    return this.#jsm;
  }

  /** Stop every consumer and RPC server started here (in-flight work settles), then drain. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.allSettled([...this.#stoppables].map((s) => s.stop()));
      // Events still waiting for their PubAck: each is stored or counted lost within the publish timeout.
      await this.eventsSettled();
      this.#events.close();
      this.#inbox.close();
      await closeConnection(this.nc);
    })();
    return this.#closing;
  }

  /** Remember a consumer or RPC server so close() can stop it; its handle forgets it once stopped. */
  #track(s: { stop(): Promise<void> }): { stop(): Promise<void> } {
    const handle = { stop: () => s.stop().finally(() => this.#stoppables.delete(handle)) };
    this.#stoppables.add(handle);
    return handle;
  }

  #noteDeadLettered(env: Envelope, stage: StageName, reason: string): Promise<void> {
    return this.recordEvent({
      ...eventBase({
        envelope: env,
        stage,
        instance: this.config.name,
        traceId: trace.getActiveSpan()?.spanContext().traceId,
      }),
      kind: 'dead-lettered',
      reason,
    });
  }
}
