/**
 * In-process handover: when the stage that sends and the stage that receives
 * run in one process (`sluice run`), the message goes from one to the other
 * as a function call instead of a NATS round trip (docs/decisions/0046).
 *
 * Two kinds, both off when `bus.inProcessHandover` is false:
 *
 * - **RPC** (the before-queue verdict, the RCPT-time lookup, any `serve`):
 *   a request whose server runs in this process is answered there when one
 *   of its handler slots is free (rpc.ts `answerInProcess`: same limit, same
 *   SERVER span, same errors); otherwise it goes over NATS, where the queue
 *   group may find another replica. Any member of a queue group may answer a
 *   request, so this changes who answers, never what.
 * - **Envelopes**, only to a consumer that declared its handler may run in
 *   its publisher's path (`consumeEnvelopes(..., { handover: true })`: the
 *   rewriter, a transformation with no waits of its own). The publisher's
 *   publish runs that handler directly; when it acks, the publish is done
 *   without touching the stream. The guarantee "ack the input only after the
 *   output is durable" still holds, by induction: the receiving handler acks
 *   only after its own outputs are durable (the rewriter's deliver-stream
 *   publish), and the publisher acks its input only after that. Any other
 *   outcome (retry, postpone, dead, a throw) falls back to the real publish,
 *   so the stream's consumer handles it with its usual delivery counting and
 *   dead-lettering: nothing is lost, and the worst case is the work done
 *   twice, which the next hop's duplicate window absorbs (the same as a
 *   redelivery). Deployed alone (a process per service) nothing is local and
 *   every stage stays its own JetStream consumer.
 *
 * The ingress' publish to the resolve stream is never handed over: that
 * publish is where a client's resend after a lost 250 is recognised (the
 * stream's duplicate window on the content-derived id, dedup-index.ts), and
 * the resolver does not opt in. The egress does not opt in either: its
 * handler is the SMTP delivery, which must not hold the publisher.
 *
 * Handovers and in-process answers are counted as operations of kind
 * `handover` and `local_request` (nats-operations.ts), so the budget test
 * shows which hops left NATS.
 */
import type { Envelope, StageName } from '@sluice/proto';
import type { BusLog } from './bus-log.ts';
import { inSpan, SpanKind } from './messaging-spans.ts';
import type { NatsOperations } from './nats-operations.ts';
import { RpcError } from './rpc.ts';
import type { Disposition, EnvelopeHandler, PublishHold } from './types.ts';

interface LocalConsumer {
  readonly stage: StageName;
  readonly durable: string;
  readonly handler: EnvelopeHandler;
  readonly inFlight: Set<Promise<unknown>>;
}

interface LocalResponder {
  answer(data: Uint8Array, timeoutMs: number): Promise<Uint8Array> | undefined;
}

const noop = () => {};

export class InProcessHandover {
  readonly #log: BusLog;
  readonly #ops: NatsOperations;
  readonly #consumers = new Map<string, LocalConsumer>();
  readonly #responders = new Map<string, LocalResponder>();

  constructor(log: BusLog, ops: NatsOperations) {
    this.#log = log;
    this.#ops = ops;
  }

  /**
   * Let publishes to `subject` in this process run `handler` directly. The returned
   * function withdraws it (new publishes go to the stream) and waits for the running ones.
   */
  addConsumer(
    subject: string,
    spec: { stage: StageName; durable: string },
    handler: EnvelopeHandler,
  ): () => Promise<void> {
    const consumer: LocalConsumer = { ...spec, handler, inFlight: new Set() };
    this.#consumers.set(subject, consumer);
    return async () => {
      if (this.#consumers.get(subject) === consumer) this.#consumers.delete(subject);
      while (consumer.inFlight.size > 0) await Promise.allSettled([...consumer.inFlight]);
    };
  }

  /** Let requests to `subject` in this process be answered by `answer`; returns the withdrawal. */
  addResponder(subject: string, responder: LocalResponder): () => void {
    this.#responders.set(subject, responder);
    return () => {
      if (this.#responders.get(subject) === responder) this.#responders.delete(subject);
    };
  }

  /**
   * Run this process' consumer of `subject` on `env`. True when it took the envelope (acked);
   * false when there is none or it did not ack, and the caller must publish to the stream.
   */
  async handOver(
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    hold: PublishHold | undefined,
  ): Promise<boolean> {
    const consumer = this.#consumers.get(subject);
    if (!consumer) return false;
    const run = this.#run(consumer, subject, env, inline, hold);
    consumer.inFlight.add(run);
    let disposition: Disposition | undefined;
    try {
      disposition = await run;
    } finally {
      consumer.inFlight.delete(run);
    }
    if (disposition?.kind === 'ack') {
      this.#ops.count('handover', consumer.stage);
      return true;
    }
    this.#log.info(
      {
        stage: consumer.stage,
        queueId: env.partId ?? env.id,
        outcome: disposition?.kind ?? 'error',
        ...(disposition && 'reason' in disposition ? { reason: disposition.reason } : {}),
      },
      'not taken in process: published to its stream instead',
    );
    return false;
  }

  async #run(
    consumer: LocalConsumer,
    subject: string,
    env: Envelope,
    inline: Uint8Array | undefined,
    hold: PublishHold | undefined,
  ): Promise<Disposition | undefined> {
    try {
      return await this.#ops.path(consumer.stage, () =>
        inSpan(
          `process ${subject}`,
          {
            kind: SpanKind.CONSUMER,
            attributes: {
              'messaging.system': 'nats',
              'messaging.operation.type': 'process',
              'messaging.destination.name': subject,
              'messaging.consumer.group.name': consumer.durable,
              'sluice.in_process': true,
              'sluice.queue_id': env.partId ?? env.id,
            },
          },
          (span) =>
            consumer
              .handler({
                envelope: env,
                inlineBody: inline,
                deliveryCount: 1,
                deliveredTimes: 1,
                streamSeq: 0,
                // Extending "our" deadline extends the publisher's input's: that is what waits.
                working: hold ? () => hold.working() : noop,
                ...(hold ? { hold } : {}),
              })
              .then((d) => {
                span.setAttribute('sluice.outcome', d.kind);
                return d;
              }),
        ),
      );
    } catch (err) {
      this.#log.warn(
        { stage: consumer.stage, queueId: env.partId ?? env.id, err },
        'in-process handler failed: published to its stream instead',
      );
      return undefined;
    }
  }

  /** Whether publishes to `subject` may be handed to a consumer in this process. */
  takes(subject: string): boolean {
    return this.#consumers.has(subject);
  }

  /**
   * Answer a request in this process (counted under the requesting stage), or undefined when
   * no local server has a free slot.
   */
  request(
    subject: string,
    data: Uint8Array,
    timeoutMs: number,
    stage: string,
  ): Promise<Uint8Array> | undefined {
    const responder = this.#responders.get(subject);
    if (!responder) return undefined;
    const answer = responder.answer(data, timeoutMs);
    if (!answer) return undefined;
    this.#ops.count('local_request', stage);
    return withTimeout(answer, subject, timeoutMs);
  }
}

/** The requester's deadline holds in process too (the handler may go on; its answer is dropped). */
function withTimeout(answer: Promise<Uint8Array>, subject: string, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new RpcError(`no reply on ${subject} within ${timeoutMs} ms`, { code: 'timeout', subject })),
      timeoutMs,
    );
    answer.then(
      (reply) => {
        clearTimeout(timer);
        resolve(reply);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}
