/**
 * Durable publishing to JetStream. A publish resolves only with the server's
 * PubAck (the message is stored, on a quorum of replicas in a cluster); that
 * is what lets the ingress answer 250 (RFC 5321 §6.1) and a stage ack its
 * input. Every envelope carries a Nats-Msg-Id so a republish after a crash is
 * dropped by the stream's duplicate window, and the trace context of the
 * caller in W3C headers. Failures become a BusPublishError: `full` for a
 * stream at its limits (the ingress answers 452 4.3.1), otherwise a timeout,
 * missing stream or lost quorum (451 4.3.0).
 */
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';
import { checkEnvelopeShape, type Envelope, encodeEnvelope, headerNames } from '@sluice/proto';
import { inSpan, SpanKind } from './messaging-spans.ts';
import { injectTraceHeaders } from './trace-headers.ts';
import { BusPublishError } from './types.ts';

/** Value of the Sluice-Content header on envelope messages. */
export const ENVELOPE_CONTENT = 'envelope/v1';

/** Server answers meaning "the stream (or the store under it) is at its limits". */
const FULL_PATTERN =
  /maximum (bytes|messages|msgs)|insufficient (resources|storage)|resource limits exceeded/i;

/** Translate a JetStream publish failure into a BusPublishError with a clear message. */
export function toPublishError(err: unknown, subject: string, timeoutMs: number): BusPublishError {
  if (err instanceof BusPublishError) return err;
  const e = err as Error;
  const text = `${e?.name ?? ''} ${e?.message ?? String(err)}`;
  if (FULL_PATTERN.test(text)) {
    return new BusPublishError(`stream for ${subject} is full: ${e.message}`, { full: true, cause: err });
  }
  if (/timeout/i.test(text)) {
    return new BusPublishError(`no PubAck for ${subject} within ${timeoutMs} ms (NATS down or no quorum?)`, {
      full: false,
      cause: err,
    });
  }
  if (/no responders|not enabled/i.test(text)) {
    return new BusPublishError(
      `no JetStream stream answers for ${subject} (topology missing or JetStream down)`,
      {
        full: false,
        cause: err,
      },
    );
  }
  return new BusPublishError(`publish to ${subject} failed: ${e?.message ?? String(err)}`, {
    full: false,
    cause: err,
  });
}

/**
 * What publishes to JetStream and returns the PubAck: the client's JetStreamClient, or the bus'
 * ReplyInbox (reply-inbox.ts), which does the same without nats.js' per-request overhead.
 */
export interface DurablePublisher {
  publish(
    subject: string,
    data: Uint8Array,
    opts: { headers?: MsgHdrs; timeout: number; msgID?: string },
  ): Promise<{ seq: number; duplicate: boolean }>;
}

/** Waits (up to the given time) for the connection to be up; false if it is not. */
export type WaitForConnection = (timeoutMs: number) => Promise<boolean>;

export interface PublishOptions {
  msgId?: string;
  headers?: MsgHdrs;
  timeoutMs: number;
  /** Hold the publish while disconnected (a write during an outage is lost by the client). */
  ready?: WaitForConnection;
}

/** A failure worth another attempt within the same deadline (the server may simply be reconnecting). */
function isTransient(err: unknown): boolean {
  const text = `${(err as Error)?.name ?? ''} ${(err as Error)?.message ?? ''}`;
  return /timeout|no responders|not enabled|disconnect|temporarily unavailable/i.test(text);
}

/** Pause between two tries of a lost publish (a leader election or reconnect is under way). */
const RETRY_PAUSE_MS = 100;

/**
 * Publish bytes and wait for the PubAck; throws BusPublishError. With a msgId
 * the publish is idempotent (the stream drops a duplicate and returns the
 * first sequence), so a request lost in a reconnect or a leader election is
 * retried within the same overall deadline instead of failing at once.
 */
export async function publishDurable(
  js: DurablePublisher,
  subject: string,
  data: Uint8Array,
  opts: PublishOptions,
): Promise<{ seq: number; duplicate: boolean }> {
  const deadline = Date.now() + opts.timeoutMs;
  const attemptMs = opts.msgId ? Math.max(1000, Math.floor(opts.timeoutMs / 3)) : opts.timeoutMs;
  for (;;) {
    if (opts.ready && !(await opts.ready(deadline - Date.now()))) {
      throw new BusPublishError(`NATS disconnected: no PubAck for ${subject} within ${opts.timeoutMs} ms`, {
        full: false,
      });
    }
    const remaining = deadline - Date.now();
    try {
      const ack = await js.publish(subject, data, {
        headers: opts.headers,
        timeout: Math.max(1, Math.min(attemptMs, remaining)),
        ...(opts.msgId ? { msgID: opts.msgId } : {}),
      });
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (err) {
      if (!opts.msgId || !isTransient(err) || deadline - Date.now() < RETRY_PAUSE_MS) {
        throw toPublishError(err, subject, opts.timeoutMs);
      }
      await new Promise((r) => setTimeout(r, RETRY_PAUSE_MS));
    }
  }
}

/**
 * Check and encode an envelope (and inline body) and publish it durably, in
 * a PRODUCER span. Rejects with EnvelopeValidationError for an invalid
 * envelope and BusPublishError when the stream does not take it.
 */
export async function publishEnvelope(
  js: DurablePublisher,
  subject: string,
  env: Envelope,
  inline: Uint8Array | undefined,
  opts: { msgId: string; timeoutMs: number; ready?: WaitForConnection },
): Promise<{ seq: number; duplicate: boolean }> {
  // A cheap shape check on the way out, so a gross producer bug fails here, before a 250; the full
  // schema runs once per hop, where the next stage decodes it (decision 0036).
  checkEnvelopeShape(env);
  const data = encodeEnvelope(env, inline);
  return inSpan(
    `send ${subject}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'nats',
        'messaging.operation.type': 'send',
        'messaging.destination.name': subject,
        'messaging.message.id': opts.msgId,
        'messaging.message.body.size': data.length,
        'sluice.queue_id': env.id,
      },
    },
    async (span) => {
      const hdrs = injectTraceHeaders(natsHeaders());
      hdrs.set(headerNames.contentType, ENVELOPE_CONTENT);
      const ack = await publishDurable(js, subject, data, { ...opts, headers: hdrs });
      span.setAttribute('sluice.stream_seq', ack.seq);
      if (ack.duplicate) span.setAttribute('sluice.duplicate', true);
      return ack;
    },
  );
}
