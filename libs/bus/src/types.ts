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
import type { BodyRef, ConsumerSpec, Envelope, SluiceEvent, StageName } from '@sluice/proto';

export type Disposition =
  /** Done: remove from the work queue. */
  | { kind: 'ack' }
  /** Try again later: nak with this delay (JetStream redelivers). */
  | { kind: 'retry'; delayMs: number; reason?: string }
  /** Give up: publish to the dead-letter stream with the reason, then ack. */
  | { kind: 'dead'; reason: string };

export interface EnvelopeDelivery {
  envelope: Envelope;
  /** Inline body bytes when envelope.body.kind === 'inline'. Use bus.loadBody to get bytes either way. */
  inlineBody?: Uint8Array;
  /** 1 on first delivery. */
  deliveryCount: number;
  /** Stream sequence of this message (unique per stream). */
  streamSeq: number;
  /** Extend the ack deadline (long SMTP transactions). */
  working(): void;
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

export interface BusClient {
  /** Put a body where it belongs: inline if <= inlineMaxBytes (and fits max_payload), else object store. */
  storeBody(queueId: string, body: Uint8Array): Promise<StoredBody>;
  /** The body bytes of an envelope (inline passthrough or object-store read with sha256 check). */
  loadBody(env: Envelope, inline?: Uint8Array): Promise<Uint8Array>;
  deleteBody(ref: BodyRef): Promise<void>;
  publishEnvelope(
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    opts: { msgId: string },
  ): Promise<{ seq: number; duplicate: boolean }>;
  consumeEnvelopes(
    spec: ConsumerSpec,
    opts: { concurrency: number },
    handler: EnvelopeHandler,
  ): StageConsumer;
  serve(
    subject: string,
    queue: string,
    opts: { concurrency: number },
    handler: (req: RpcRequest) => Promise<Uint8Array>,
  ): RpcServer;
  /** Request/reply with trace headers injected from the active context. Rejects on timeout / no responders. */
  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
  /** Append to the message timeline. Never throws (a lost event is logged, not fatal). */
  recordEvent(event: SluiceEvent): Promise<void>;
  /** Put raw bytes on the dead-letter stream with the reason. */
  deadLetter(
    stage: StageName,
    reason: string,
    data: Uint8Array,
    headers?: Record<string, string>,
  ): Promise<void>;
  /** Delivery ledger (egress): get returns null when absent. put must be durable before it resolves. */
  ledgerGet(key: string): Promise<LedgerEntry | null>;
  ledgerPut(key: string, entry: LedgerEntry): Promise<void>;
  /** Greylist triplets (filter), compare-and-set: get null when absent; create false when present; update false on a lost race. */
  greylistGet(key: string): Promise<{ value: string; revision: number } | null>;
  greylistCreate(key: string, value: string): Promise<boolean>;
  greylistUpdate(key: string, value: string, revision: number): Promise<boolean>;
  /** The server's max_payload in bytes. */
  readonly maxPayload: number;
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
