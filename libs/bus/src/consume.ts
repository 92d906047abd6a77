/**
 * The stage consumer: pulls envelopes from a durable JetStream consumer and
 * runs up to `concurrency` handlers at once, then settles each message by the
 * handler's disposition (ack, nak with delay, dead-letter then ack).
 *
 * Flow control is by free slots: the puller asks the server only for as many
 * messages as there are idle handler slots (fetch of N), so no message waits
 * in a client-side buffer while its ack_wait runs out (the consume() iterator
 * would prefetch, and hand the next message only after the loop body ends).
 * Pull requests are issued when a quarter of the slots are free, or at once
 * when none is outstanding, which keeps batches large under load.
 *
 * Every message runs in a CONSUMER span "process <subject>" whose parent is
 * the trace context from the message headers. Invalid bytes and messages that
 * failed maxDeliver times go to the dead-letter stream with the reason, then
 * are acked; if the dead-letter publish fails the input is nak'ed, never
 * acked, so nothing disappears. The server's max_deliver is unlimited: the
 * bus counts deliveries itself and also dead-letters, without running the
 * handler, a message that keeps crashing the process before it can settle.
 *
 * Acks are one-way (no confirmation round trip, docs/decisions/0010): a lost
 * ack only means a redelivery after ack_wait, which the stages absorb (their
 * republish is dropped by the duplicate window, the egress skips recipients
 * already in its ledger). Each message's handling is one message path of the
 * stage (nats-operations.ts), so its NATS round trips are counted.
 *
 * A handler that fails because the next stream is full is backpressure, not
 * an error (backpressure.ts): the publish normally holds the message itself
 * (EnvelopeDelivery.hold); if the "full" error still reaches here (a stage
 * stopping, or a publish without the hold) the message is nak'ed with a
 * pause and those deliveries are not counted toward maxDeliver by this
 * process, so a full disk never dead-letters accepted mail.
 *
 * A 'postpone' disposition (the egress queue holding a part back without an
 * attempt: destination busy, rate-limited, backed off, or held) is nak'ed with
 * its delay and, like backpressure, not counted toward maxDeliver by this
 * process (another replica that receives it next does count it).
 *
 * stop() stops pulling, naks what arrives afterwards (immediate redelivery to
 * another replica), waits for the running handlers and their acks, flushes
 * (so every ack sent has left), then resolves: nothing unfinished is ever acked. Reconnects are handled by
 * the client (pull requests are re-issued); failed pulls are retried with
 * backoff, so the loop survives server restarts.
 */
import type { Consumer, ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import {
  type ConsumerSpec,
  decodeEnvelope,
  dedupIds,
  type Envelope,
  headerNames,
  type StageName,
} from '@sluice/proto';
import { isFullError } from './backpressure.ts';
import type { BusLog } from './bus-log.ts';
import { inSpan, SpanKind } from './messaging-spans.ts';
import type { NatsOperations } from './nats-operations.ts';
import { extractTraceContext, headersToRecord } from './trace-headers.ts';
import type { Disposition, EnvelopeHandler, StageConsumer } from './types.ts';

/** How long one pull request waits on the server for messages. */
export const PULL_EXPIRES_MS = 30_000;
/** Backoff after a failed pull (no consumer, disconnected), doubling up to the max. */
const PULL_RETRY_MIN_MS = 250;
const PULL_RETRY_MAX_MS = 10_000;
/** Default nak delay base after a handler throws: 2^(n-1) * base, capped. */
export const ERROR_BACKOFF_BASE_MS = 1000;
export const ERROR_BACKOFF_MAX_MS = 5 * 60_000;
/** Nak delay after a "stream full" that reached the consumer (backpressure, not counted). */
export const FULL_STREAM_NAK_MS = 2000;
/** Deliveries remembered as backpressure naks (per stream sequence), bounded. */
const MAX_REMEMBERED_BACKPRESSURE = 100_000;

export interface ConsumeOptions {
  concurrency: number;
  /** Base of the exponential nak delay after a handler throws (default 1 s). */
  errorBackoffBaseMs?: number;
  /** Nak delay when a "stream full" error reaches the consumer (default FULL_STREAM_NAK_MS). */
  fullStreamNakMs?: number;
}

export interface ConsumeDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  log: BusLog;
  /** Where the consumer's NATS operations are counted. */
  ops: NatsOperations;
  maxDeliver: number;
  ackTimeoutMs: number;
  /** Waits for the connection to be up (writes during an outage are lost by the client). */
  ready(timeoutMs: number): Promise<boolean>;
  deadLetter(
    stage: StageName,
    reason: string,
    data: Uint8Array,
    headers: Record<string, string>,
  ): Promise<void>;
  /** Note a dead-lettered envelope in its timeline (best effort). */
  noteDeadLettered(env: Envelope, stage: StageName, reason: string): Promise<void>;
}

/** The nak delay after the n-th failed delivery. */
export function errorBackoffMs(deliveryCount: number, baseMs = ERROR_BACKOFF_BASE_MS): number {
  const exp = Math.min(Math.max(deliveryCount - 1, 0), 30);
  return Math.min(baseMs * 2 ** exp, ERROR_BACKOFF_MAX_MS);
}

/** A wake-up signal the pull loop waits on; `notify` resolves the current wait. */
class Signal {
  #resolve: (() => void) | null = null;
  #pending = false;
  notify(): void {
    if (this.#resolve) {
      const r = this.#resolve;
      this.#resolve = null;
      r();
    } else {
      this.#pending = true;
    }
  }
  wait(timeoutMs?: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => this.notify(), timeoutMs);
      this.#resolve = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  }
}

export function consumeEnvelopes(
  deps: ConsumeDeps,
  spec: ConsumerSpec,
  opts: ConsumeOptions,
  handler: EnvelopeHandler,
): StageConsumer {
  if (!Number.isInteger(opts.concurrency) || opts.concurrency < 1) {
    throw new RangeError(`concurrency must be a positive integer, got ${opts.concurrency}`);
  }
  return new EnvelopeConsumer(deps, spec, opts, handler);
}

class EnvelopeConsumer implements StageConsumer {
  readonly #deps: ConsumeDeps;
  readonly #spec: ConsumerSpec;
  readonly #concurrency: number;
  readonly #refillAt: number;
  readonly #backoffBase: number;
  readonly #fullStreamNakMs: number;
  readonly #handler: EnvelopeHandler;
  readonly #signal = new Signal();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #fetches = new Set<ConsumerMessages>();
  readonly #drains = new Set<Promise<void>>();
  /** Messages asked for by outstanding pull requests and not yet received. */
  #requested = 0;
  #running = true;
  #stopRequested!: () => void;
  readonly #stopping = new Promise<void>((resolve) => {
    this.#stopRequested = resolve;
  });
  #pullFailures = 0;
  /** Aborted by stop(): ends backpressure holds. */
  readonly #stopSignal = new AbortController();
  /** Deliveries per stream sequence that were backpressure naks, not failures. */
  readonly #backpressured = new Map<number, number>();
  readonly #loop: Promise<void>;
  #stopped: Promise<void> | null = null;

  constructor(deps: ConsumeDeps, spec: ConsumerSpec, opts: ConsumeOptions, handler: EnvelopeHandler) {
    this.#deps = deps;
    this.#spec = spec;
    this.#concurrency = opts.concurrency;
    this.#refillAt = Math.max(1, Math.floor(opts.concurrency / 4));
    this.#backoffBase = opts.errorBackoffBaseMs ?? ERROR_BACKOFF_BASE_MS;
    this.#fullStreamNakMs = opts.fullStreamNakMs ?? FULL_STREAM_NAK_MS;
    this.#handler = handler;
    this.#loop = this.#pullLoop();
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#running = false;
    this.#stopSignal.abort();
    this.#stopRequested();
    this.#signal.notify();
    for (const f of this.#fetches) f.stop();
    await this.#loop;
    while (this.#drains.size > 0 || this.#inFlight.size > 0) {
      await Promise.allSettled([...this.#drains, ...this.#inFlight]);
    }
    // Naks and plain acks are fire-and-forget: make sure they left before we report stopped.
    if (!this.#deps.nc.isClosed()) await this.#deps.nc.flush().catch(() => {});
  }

  async #pullLoop(): Promise<void> {
    const { js, log } = this.#deps;
    const { stream, durable } = this.#spec;
    let consumer: Consumer | null = null;
    while (this.#running) {
      if (this.#pullFailures > 0) {
        const wait = Math.min(PULL_RETRY_MIN_MS * 2 ** (this.#pullFailures - 1), PULL_RETRY_MAX_MS);
        await this.#signal.wait(wait);
        if (!this.#running) break;
      }
      if (this.#deps.nc.isClosed()) break;
      // Hold pulls during an outage (the client would drop them); stop() interrupts the wait.
      const up = await Promise.race([this.#deps.ready(PULL_RETRY_MAX_MS), this.#stopping.then(() => false)]);
      if (!this.#running) break;
      if (!up) continue;
      if (!consumer) {
        try {
          this.#deps.ops.count('api', this.#spec.stage);
          consumer = await js.consumers.get(stream, durable);
          if (this.#pullFailures > 0) log.info({ stream, durable }, 'consumer available again');
          this.#pullFailures = 0;
        } catch (err) {
          this.#pullFailures++;
          log.warn(
            { stream, durable, err, attempt: this.#pullFailures },
            'cannot bind to JetStream consumer',
          );
          continue;
        }
      }
      if (!this.#running) break;
      const free = this.#concurrency - this.#inFlight.size - this.#requested;
      if (free <= 0 || (this.#requested > 0 && free < this.#refillAt)) {
        await this.#signal.wait();
        continue;
      }
      let batch: ConsumerMessages;
      try {
        this.#deps.ops.count('pull', this.#spec.stage);
        batch = await consumer.fetch({ max_messages: free, expires: PULL_EXPIRES_MS });
      } catch (err) {
        this.#pullFailures++;
        log.warn({ stream, durable, err }, 'pull request failed');
        consumer = null;
        continue;
      }
      this.#requested += free;
      this.#fetches.add(batch);
      if (!this.#running) batch.stop(); // stop() came while the pull was being set up
      const drain = this.#drainFetch(batch, free).then((failed) => {
        if (failed) consumer = null;
      });
      this.#drains.add(drain);
      void drain.finally(() => this.#drains.delete(drain));
    }
  }

  /** Dispatch the messages of one pull request; true when it ended with an error. */
  async #drainFetch(batch: ConsumerMessages, asked: number): Promise<boolean> {
    let received = 0;
    let failed = false;
    try {
      for await (const m of batch) {
        received++;
        this.#requested--;
        if (!this.#running) {
          this.#deps.ops.count('nak', this.#spec.stage);
          m.nak(); // arrived during stop: let another replica have it now
          continue;
        }
        this.#pullFailures = 0;
        const p = this.#process(m);
        this.#inFlight.add(p);
        void p.finally(() => {
          this.#inFlight.delete(p);
          this.#signal.notify();
        });
      }
    } catch (err) {
      if (this.#running) {
        failed = true;
        this.#pullFailures++;
        this.#deps.log.warn(
          { stream: this.#spec.stream, durable: this.#spec.durable, err },
          'pull interrupted',
        );
      }
    } finally {
      this.#requested -= asked - received;
      this.#fetches.delete(batch);
      this.#signal.notify();
    }
    return failed;
  }

  async #process(m: JsMsg): Promise<void> {
    const parent = extractTraceContext(m.headers, ROOT_CONTEXT);
    const msgId = m.headers?.has(headerNames.msgId) ? m.headers.get(headerNames.msgId) : undefined;
    try {
      await this.#deps.ops.path(this.#spec.stage, () =>
        inSpan(
          `process ${m.subject}`,
          {
            kind: SpanKind.CONSUMER,
            parent,
            attributes: {
              'messaging.system': 'nats',
              'messaging.operation.type': 'process',
              'messaging.destination.name': m.subject,
              'messaging.consumer.group.name': this.#spec.durable,
              'messaging.message.body.size': m.data.length,
              'messaging.nats.stream_sequence': m.seq,
              'messaging.nats.delivery_count': m.info.deliveryCount,
              ...(msgId ? { 'messaging.message.id': msgId } : {}),
            },
          },
          (span) => this.#handle(m, (k, v) => span.setAttribute(k, v)),
        ),
      );
    } catch (err) {
      // #handle settles every path itself; reaching here means a dead-letter publish failed.
      this.#deps.log.error(
        { stream: this.#spec.stream, seq: m.seq, err },
        'could not settle message; it will be redelivered',
      );
    }
  }

  async #handle(m: JsMsg, annotate: (k: string, v: string | number) => void): Promise<void> {
    const { maxDeliver, log } = this.#deps;
    // Backpressure naks (a full next stream) are not failures: they do not count.
    const deliveryCount = m.info.deliveryCount - (this.#backpressured.get(m.seq) ?? 0);
    let env: Envelope;
    let inlineBody: Uint8Array | undefined;
    try {
      ({ envelope: env, body: inlineBody } = decodeEnvelope(m.data));
    } catch (err) {
      const reason = (err as Error).message;
      log.warn({ stage: this.#spec.stage, seq: m.seq, reason }, 'invalid message dead-lettered');
      annotate('sluice.outcome', 'invalid');
      await this.#deadLetterAndAck(m, reason);
      return;
    }
    annotate('sluice.queue_id', env.partId ?? env.id);
    if (deliveryCount > maxDeliver) {
      // It never settled in maxDeliver tries (crashed the process, or timed out every time).
      await this.#giveUp(m, env, `not settled after ${maxDeliver} deliveries`);
      return;
    }
    let disposition: Disposition;
    try {
      disposition = await this.#handler({
        envelope: env,
        inlineBody,
        deliveryCount,
        deliveredTimes: m.info.deliveryCount,
        streamSeq: m.seq,
        working: () => {
          this.#deps.ops.count('working', this.#spec.stage);
          m.working();
        },
        hold: {
          working: () => {
            this.#deps.ops.count('working', this.#spec.stage);
            m.working();
          },
          signal: this.#stopSignal.signal,
        },
      });
    } catch (err) {
      if (isFullError(err)) {
        log.info(
          { stage: this.#spec.stage, queueId: env.id, seq: m.seq, delayMs: this.#fullStreamNakMs },
          'next stream full: message returned to the queue (backpressure, not counted as a failure)',
        );
        annotate('sluice.outcome', 'backpressure');
        this.#rememberBackpressure(m.seq);
        await this.#nak(m, this.#fullStreamNakMs);
        return;
      }
      const reason = `handler failed: ${(err as Error).message}`;
      if (deliveryCount >= maxDeliver) {
        await this.#giveUp(m, env, `${reason} (delivery ${deliveryCount} of ${maxDeliver})`);
        return;
      }
      const delay = errorBackoffMs(deliveryCount, this.#backoffBase);
      log.warn(
        { stage: this.#spec.stage, queueId: env.id, seq: m.seq, deliveryCount, delayMs: delay, err },
        reason,
      );
      annotate('sluice.outcome', 'error');
      await this.#nak(m, delay);
      return;
    }
    annotate('sluice.outcome', disposition.kind);
    switch (disposition.kind) {
      case 'ack':
        this.#backpressured.delete(m.seq);
        await this.#ack(m);
        return;
      case 'retry':
        if (deliveryCount >= maxDeliver) {
          await this.#giveUp(
            m,
            env,
            `still failing after ${deliveryCount} deliveries: ${disposition.reason ?? 'retry'}`,
          );
          return;
        }
        await this.#nak(m, Math.max(0, Math.round(disposition.delayMs)));
        return;
      case 'postpone':
        // Not an attempt (the egress queue held it back): like backpressure, not counted.
        this.#rememberBackpressure(m.seq);
        await this.#nak(m, Math.max(0, Math.round(disposition.delayMs)));
        return;
      case 'dead':
        await this.#giveUp(m, env, disposition.reason);
        return;
    }
  }

  #rememberBackpressure(seq: number): void {
    this.#backpressured.set(seq, (this.#backpressured.get(seq) ?? 0) + 1);
    if (this.#backpressured.size > MAX_REMEMBERED_BACKPRESSURE) {
      const oldest = this.#backpressured.keys().next().value;
      if (oldest !== undefined) this.#backpressured.delete(oldest);
    }
  }

  async #giveUp(m: JsMsg, env: Envelope, reason: string): Promise<void> {
    this.#deps.log.warn(
      { stage: this.#spec.stage, queueId: env.id, seq: m.seq, reason },
      'message dead-lettered',
    );
    await this.#deadLetterAndAck(m, reason);
    await this.#deps.noteDeadLettered(env, this.#spec.stage, reason);
  }

  /** Dead-letter then ack; if the dead-letter publish fails, nak (with backoff) and rethrow. */
  async #deadLetterAndAck(m: JsMsg, reason: string): Promise<void> {
    const headers = headersToRecord(m.headers);
    // A redelivery after a crash between these two steps must not dead-letter twice.
    headers[headerNames.msgId] = dedupIds.deadLetter(this.#spec.stream, m.seq);
    try {
      await this.#deps.deadLetter(this.#spec.stage, reason, m.data, headers);
    } catch (err) {
      await this.#nak(m, errorBackoffMs(m.info.deliveryCount, this.#backoffBase));
      throw err;
    }
    await this.#ack(m);
  }

  /** Nak with a delay; held while disconnected, since a nak written then is lost. */
  async #nak(m: JsMsg, delayMs: number): Promise<void> {
    await this.#deps.ready(this.#deps.ackTimeoutMs);
    this.#deps.ops.count('nak', this.#spec.stage);
    m.nak(delayMs);
  }

  /**
   * Ack, one-way; held while disconnected, since an ack written then is lost. A lost ack is a
   * redelivery after ack_wait: the stage's republish is deduplicated by its Nats-Msg-Id (the
   * duplicate window is longer than ack_wait) and the egress' ledger skips delivered recipients.
   */
  async #ack(m: JsMsg): Promise<void> {
    await this.#deps.ready(this.#deps.ackTimeoutMs);
    this.#deps.ops.count('ack', this.#spec.stage);
    m.ack();
  }
}
