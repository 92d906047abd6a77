/**
 * The bus contract that services code against. `Bus` (bus.ts) implements it
 * over NATS JetStream; tests may drive services through the real one only.
 *
 * Guarantees a caller can rely on:
 * - publishEnvelope resolves only after the server's PubAck (the message is in
 *   the stream); it rejects with BusPublishError on timeout, a full stream or
 *   no quorum, so the ingress answers 451/452 instead of 250.
 * - consumeEnvelopes hands a handler one validated envelope at a time, with
 *   the trace context of its producer active; invalid messages and messages
 *   delivered maxDeliver times go to the dead-letter stream, never silently away.
 * - A handler's output must be published (awaited) before it returns 'ack'.
 */
import type { Readable } from 'node:stream';
import type { KV } from '@nats-io/kv';

import type { BodyRef, ConsumerSpec, Envelope, SluiceEvent, StageName } from '@sluice/proto';
import type { LedgerHold } from './ledger.ts';

export type Disposition =
  /** Done: remove from the work queue. */
  | { kind: 'ack' }
  /** Try again later: nak with this delay (JetStream redelivers). */
  | { kind: 'retry'; delayMs: number; reason?: string }
  /**
   * Not attempted now (its destination is busy, rate-limited or backed off, or it
   * is held): nak with this delay, not counted toward maxDeliver by this process.
   */
  | { kind: 'postpone'; delayMs: number; reason?: string }
  /** Give up: publish to the dead-letter stream with the reason, then ack. */
  | { kind: 'dead'; reason: string };

export interface EnvelopeDelivery {
  envelope: Envelope;
  /** Inline body bytes when envelope.body.kind === 'inline'. Use bus.loadBody to get bytes either way. */
  inlineBody?: Uint8Array;
  /** 1 on first delivery; postpones and backpressure naks by this process are not counted. */
  deliveryCount: number;
  /** Every delivery of this message by the server, postpones included (1: never delivered before). */
  deliveredTimes?: number;
  /** Stream sequence of this message (unique per stream); 0 when handed over in process. */
  streamSeq: number;
  /** Extend the ack deadline (long SMTP transactions). */
  working(): void;
  /**
   * Pass as publishEnvelope's `whileFull`: a full next stream then holds this
   * message (backpressure) instead of failing it. Set by the bus' consumer.
   */
  hold?: PublishHold;
}

/**
 * Keeps a stage's input while the stream it publishes to is full: the publish
 * is retried, the input's ack deadline extended, and no delivery is spent, so
 * accepted mail waits for room instead of going to the dead-letter stream.
 */
export interface PublishHold {
  /** Extend the input's ack deadline. */
  working(): void;
  /** Aborted when the stage stops: the hold ends and the "full" error is thrown. */
  signal: AbortSignal;
  /** Called each time the publish found the stream full (metrics). */
  onFull?(): void;
}

export type EnvelopeHandler = (d: EnvelopeDelivery) => Promise<Disposition>;

export interface StageConsumer {
  /** Stop pulling, wait for in-flight handlers to finish (ack/nak), then resolve. */
  stop(): Promise<void>;
}

export interface RpcRequest {
  data: Uint8Array;
  /** NATS headers as a plain map (first value of each). */
  headers: Record<string, string>;
}

export interface RpcServer {
  stop(): Promise<void>;
}

export interface StoredBody {
  ref: BodyRef;
  /** The bytes to send inline when ref.kind === 'inline'. */
  inline?: Uint8Array;
}

export interface LedgerEntry {
  status: 'delivered' | 'failed';
  at: string;
  reply: string;
}

import type { StoredSnapshot } from './ldap-snapshot-store.ts';
import type { SharedTable } from './shared-table.ts';

/** The buckets a SharedTable may live in (proto buckets). */
export type SharedTableBucket = 'egressQueue' | 'egressDestinations';

export type { StoredSnapshot };

export interface BusClient {
  /** Put a body where it belongs: inline if <= inlineMaxBytes (and fits max_payload), else object store. */
  storeBody(queueId: string, body: Uint8Array): Promise<StoredBody>;
  /**
   * Stream a large body into the object store (always the object store, whatever its size):
   * size, sha256 and 8-bit-ness are computed on the way. If `chunks` throws, nothing is stored
   * and its error is rethrown.
   */
  storeBodyStream(queueId: string, chunks: AsyncIterable<Uint8Array>): Promise<StoredBody>;
  /** The body bytes of an envelope (inline passthrough or object-store read with sha256 check). */
  loadBody(env: Envelope, inline?: Uint8Array): Promise<Uint8Array>;
  /**
   * The body as a stream that never holds a large body whole; resolves once the body is known to
   * exist, and fails (BodyUnavailableError) on a missing object or a size or sha256 mismatch.
   */
  openBody(env: Envelope, inline?: Uint8Array): Promise<Readable>;
  deleteBody(ref: BodyRef): Promise<void>;
  /** With `whileFull`, a full stream holds the caller (backpressure) until room is made or it stops. */
  publishEnvelope(
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    opts: { msgId: string; whileFull?: PublishHold },
  ): Promise<{ seq: number; duplicate: boolean }>;
  consumeEnvelopes(
    spec: ConsumerSpec,
    /**
     * handover: the handler may run in a publisher's path in this process, instead of a trip
     * through the stream (in-process-handover.ts): only for handlers without waits of their own.
     */
    opts: { concurrency: number; handover?: boolean },
    handler: EnvelopeHandler,
  ): StageConsumer;
  serve(
    subject: string,
    queue: string,
    opts: Omit<RpcServeOptions, 'stage'>,
    handler: (req: RpcRequest) => Promise<Uint8Array>,
  ): RpcServer;
  /** Request/reply with trace headers injected from the active context. Rejects on timeout / no responders. */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /**
   * Append to the message timeline without holding the message path: resolves once the event is
   * handed to NATS (it waits only when too many events await their PubAck, or NATS is down).
   * Never throws (a lost event is logged and counted, not fatal).
   */
  recordEvent(event: SluiceEvent): Promise<void>;
  /** Run one message's handling at this stage as a message path, so its NATS round trips are counted. */
  messagePath<T>(fn: () => Promise<T>): Promise<T>;
  /** Put raw bytes on the dead-letter stream with the reason. */
  deadLetter(
    stage: StageName,
    reason: string,
    data: Uint8Array,
    headers?: Record<string, string>,
  ): Promise<void>;
  /** Delivery ledger (egress): get returns null when absent. put must be durable before it resolves. */
  ledgerGet(key: string): Promise<LedgerEntry | null>;
  /**
   * Write a final outcome unless the key already has one: null when ours is
   * stored, else the earlier entry (this delivery was a repeat). With `hold`,
   * retried until durable (reconnects, full storage); see ledger.ts.
   */
  ledgerPut(key: string, entry: LedgerEntry, opts?: { hold?: LedgerHold }): Promise<LedgerEntry | null>;
  /** The largest body that travels inline: min(bus.inlineMaxBytes, max_payload - 64 KiB). */
  readonly inlineLimit: number;
  /** Dedup index (dedup-index.ts): note a queue id under its ingress dedup id before publishing. */
  noteDedupId(msgId: string, entry: { queueId: string; duplicateOf?: string }): void;
  /** The queue id the first copy under `msgId` was queued as, seen from the duplicate `queueId`. */
  firstQueueIdOf(msgId: string, queueId: string): Promise<string | undefined>;
  /** Greylist triplets (filter), compare-and-set: get null when absent; create false when present; update false on a lost race. */
  greylistGet(key: string): Promise<{ value: string; revision: number } | null>;
  greylistCreate(key: string, value: string): Promise<boolean>;
  greylistUpdate(key: string, value: string, revision: number): Promise<boolean>;
  /** The MX's shared session counter (compare-and-set): add one session to `key`, the count after it. */
  countIngressSession(key: string): Promise<number>;
  /** Submission rate counters (buckets.submissionRates), compare-and-set like the greylist. */
  rateCounterGet(key: string): Promise<{ value: string; revision: number } | null>;
  rateCounterCreate(key: string, value: string): Promise<boolean>;
  rateCounterUpdate(key: string, value: string, revision: number): Promise<boolean>;
  /** The server's max_payload in bytes. */
  readonly maxPayload: number;
  /** The shared LDAP snapshot (resolver): get, compare-and-set put (null: lost the race), watch. */
  ldapSnapshotGet(): Promise<StoredSnapshot | null>;
  ldapSnapshotPut(value: Uint8Array, expectedRevision: number): Promise<number | null>;
  ldapSnapshotWatch(onSnapshot: (s: StoredSnapshot) => void): Promise<() => void>;
  /**
   * The submission's KV buckets (buckets.credentials, buckets.authThrottle), opened once:
   * libs/credentials keeps its snapshot and compare-and-set counters in them.
   */
  authBuckets(): Promise<AuthBuckets>;
  /** The egress' MTA-STS policy cache (buckets.mtaStsPolicies), one key per policy domain. */
  mtaStsPolicyGet(domain: string): Promise<Uint8Array | null>;
  mtaStsPolicyPut(domain: string, value: Uint8Array): Promise<void>;
  /**
   * The egress' TLS-RPT store (buckets.tlsReports): compare-and-set access
   * (create false when present, update false on a lost race) and the keys
   * matching a NATS subject filter (e.g. `results.2026-11-30.>`).
   */
  tlsReportGet(key: string): Promise<{ value: string; revision: number } | null>;
  tlsReportCreate(key: string, value: string): Promise<boolean>;
  tlsReportUpdate(key: string, value: string, revision: number): Promise<boolean>;
  tlsReportKeys(filter: string): Promise<string[]>;
  /** The egress queue's shared tables (shared-table.ts) in buckets.egressQueue / egressDestinations. */
  sharedTable<T>(bucket: SharedTableBucket): SharedTable<T>;
  /** One message of a stream by sequence (bytes and headers), or null when it is gone. */
  streamMessage(
    stream: string,
    seq: number,
  ): Promise<{ data: Uint8Array; headers: Record<string, string> } | null>;
  /** Remove one message from a stream (the egress queue moving a waiting part); false when it was gone. */
  deleteStreamMessage(stream: string, seq: number): Promise<boolean>;
  /** The free-space guard: false `ok` means refuse new mail with 452 4.3.1 (store-guard.ts). */
  storeRoom(): Promise<{ ok: boolean; freeBytes: number; short?: 'disk' | 'budget' }>;
}

/** The submission's credential snapshot and brute-force counter buckets (Bus.authBuckets). */
export interface AuthBuckets {
  credentials: KV;
  throttle: KV;
}

export class BusPublishError extends Error {
  override name = 'BusPublishError';
  /** true for a stream that is full (452 4.3.1), false for timeouts / no quorum (451 4.3.0). */
  readonly full: boolean;
  constructor(message: string, opts: { full: boolean; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.full = opts.full;
  }
}

/** How serve() runs handlers and how many requests may wait for a slot. */
export interface RpcServeOptions {
  concurrency: number;
  stage?: string;
  /** Requests waiting for a handler slot; one more is answered busy at once. Absent: unbounded. */
  maxQueued?: number;
  /** Called for each request answered busy. */
  onShed?: () => void;
  /** Called with the number of waiting requests whenever it changes. */
  onQueueLength?: (waiting: number) => void;
}
