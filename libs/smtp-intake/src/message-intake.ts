/**
 * The end of one SMTP transaction: from the bytes after DATA to the reply to
 * the final dot. In order:
 *
 *   read the body (size limit, bare CR/LF refused, body budget: message-reader.ts);
 *     a large body streams into the object store while it is read
 *   the free-space guard: 452 4.3.1 while the store is almost full
 *   store a small body (it travels inline)
 *   record 'received' on the timeline (not awaited: event-log.ts)
 *   ask the filter for the before-queue verdict (request/reply, bounded wait)
 *   prepend our Received header, then the filter's headers
 *   publish to the resolve stream and wait for the PubAck
 *   250 "Ok: queued as <id>"
 *
 * All of it runs in one SERVER span, the root of the message's trace, so the
 * filter request and the publish carry its context to every later stage.
 * Refusals are returned as SmtpError values (not thrown through the span, so
 * a refused message is not recorded as our failure) and answered by the
 * caller. A body stored in the object store for a message that is then
 * refused is deleted again; after a failed publish it is kept, because a
 * PubAck can be lost after the stream stored the message.
 */
import { type Span, SpanKind } from '@opentelemetry/api';
import { type BusClient, RpcError, STREAM_BUFFER_BYTES } from '@sluice/bus';
import { activeTraceFields, type Logger, type Redactor } from '@sluice/log';
import {
  type BodyRef,
  dedupIds,
  type Envelope,
  encodeEnvelope,
  eventBase,
  newQueueId,
  type StageName,
  subjects,
} from '@sluice/proto';
import { queuedReply, receivedHeader, type SmtpError, smtpError } from '@sluice/smtp';
import { type Metrics, runInSpan } from '@sluice/telemetry';
import type { BodyBudget } from './body-budget.ts';
import { buildEnvelope, messageIdOf, type TransactionFacts, traceparentOf } from './envelope-builder.ts';
import { type MessageRead, readMessage } from './message-reader.ts';
import { type FilterOutcome, filterOutcome, publishFailure } from './queue-answers.ts';

export interface IntakeDeps {
  bus: BusClient;
  log: Logger;
  metrics: Metrics;
  redact: Redactor;
  instance: string;
  hostname: string;
  maxMessageBytes: number;
  filterTimeoutMs: number;
  /** ingress.maxBodyBytesInFlight: bodies held in memory by this process. */
  budget: BodyBudget;
  /** The door: envelope source and the stage named in hops, events and the span (default: the MX, ingress). */
  door?: { source: Envelope['source']; stage: StageName };
  /**
   * Our Received header: `hideClient` leaves out the client's HELO, address and name
   * (authenticated submission, privacy), and so are the filter's headers that name
   * either (its Authentication-Results carries smtp.helo); `hideTls` leaves out the
   * client's TLS protocol and cipher.
   */
  received?: { hideClient?: boolean; hideTls?: boolean };
  /** Do not ask the filter (submission.filter false): the message is accepted as it is. */
  skipFilter?: boolean;
}

/** The verdict of a message the filter is not asked about. */
const UNFILTERED: FilterOutcome = {
  kind: 'accept',
  reply: { v: 1, verdict: { action: 'accept', score: 0, rules: [] }, prepend: [] },
};

/** What the SMTP session knows when DATA starts (taken from smtp-server's session). */
export interface TransactionContext {
  client: TransactionFacts['client'];
  /** true after EHLO, false after HELO. */
  ehlo: boolean;
  mailFrom: string;
  mailParams: Record<string, string | true>;
  smtputf8: boolean;
  recipients: TransactionFacts['recipients'];
  /** The authenticated identity (RFC 4954), for client.auth and the Received with-protocol. */
  auth?: { user: string; method: string };
  /**
   * A check of the header section after DATA, before the filter (submission: the From
   * header); a refusal is answered and the stored body deleted.
   */
  checkHead?: (head: Uint8Array) => Promise<{ error: SmtpError; reason: string } | undefined>;
}

/** `trace` holds the message span's ids, so the reply can be logged (after the span ended) in its trace. */
export type IntakeResult = (
  | { ok: true; queueId: string; text: string; duplicate: boolean }
  | { ok: false; error: SmtpError; reason: string; queueId?: string; disconnect?: boolean }
) & { trace?: { trace_id?: string; span_id?: string } };

export async function receiveMessage(
  deps: IntakeDeps,
  tx: TransactionContext,
  stream: NodeJS.ReadableStream & { sizeExceeded?: boolean },
): Promise<IntakeResult> {
  const queueId = newQueueId();
  const attributes = {
    'client.address': tx.client.ip,
    'sluice.queue_id': queueId,
    'smtp.mail_from': deps.redact.address(tx.mailFrom),
    'smtp.rcpt_count': tx.recipients.length,
  };
  return runInSpan(
    `${deps.door?.stage ?? 'ingress'} receive`,
    { kind: SpanKind.SERVER, attributes },
    async (span) => {
      // One message path of the ingress: its NATS round trips are counted (docs/decisions/0010).
      const result = await deps.bus
        .messagePath(() => intake(deps, tx, stream, queueId, span))
        .catch((err: unknown): IntakeResult => {
          if ((err as { code?: string }).code === 'ECONNECTION') {
            // smtp-server ends the data stream this way when the client disconnects mid-DATA.
            deps.log.info({ queueId }, 'client went away during DATA');
            return {
              ok: false,
              error: smtpError('localError', undefined, { cause: err }),
              reason: 'client-gone',
            };
          }
          deps.log.error({ err, queueId }, 'message intake failed');
          return {
            ok: false,
            error: smtpError('localError', undefined, { cause: err }),
            reason: 'internal',
            queueId,
          };
        });
      span.setAttribute('smtp.reply_code', result.ok ? 250 : result.error.code);
      if (!result.ok) span.setAttribute('sluice.refusal', result.reason);
      return { ...result, trace: activeTraceFields() };
    },
  );
}

async function intake(
  deps: IntakeDeps,
  tx: TransactionContext,
  stream: NodeJS.ReadableStream & { sizeExceeded?: boolean },
  queueId: string,
  span: Span,
): Promise<IntakeResult> {
  const { bus } = deps;
  const reservation = deps.budget.reserve();
  try {
    const read = await readMessage(stream as Parameters<typeof readMessage>[0], {
      maxBytes: deps.maxMessageBytes,
      inlineLimit: bus.inlineLimit,
      declaredBytes: Number(tx.mailParams['SIZE']) || undefined,
      reservation,
      streamBufferBytes: STREAM_BUFFER_BYTES,
      storeStream: (chunks) => bus.storeBodyStream(queueId, chunks),
    });
    return await afterRead(deps, tx, queueId, span, read);
  } finally {
    // Stored and published, or refused: what the transaction held of the body is free again.
    reservation.release();
  }
}

/**
 * The verdict request. A busy answer (the replica's handler slots and wait queue were full, bus
 * rpc.ts) is asked once more within the same deadline: the queue group hands the retry to a random
 * member, usually another replica, which approximates "the least busy replica" without tracking load.
 */
async function askFilter(
  deps: IntakeDeps,
  data: Uint8Array,
): Promise<{ data: Uint8Array } | { error: unknown }> {
  const deadline = Date.now() + deps.filterTimeoutMs;
  const ask = () =>
    deps.bus.request(subjects.filterVerdict, data, Math.max(1, deadline - Date.now())).then(
      (reply) => ({ data: reply }),
      (error: unknown) => ({ error }),
    );
  const first = await ask();
  if ('error' in first && first.error instanceof RpcError && first.error.code === 'busy') return ask();
  return first;
}

/** Everything after the body is read: store a small body, verdict, headers, publish. */
async function afterRead(
  deps: IntakeDeps,
  tx: TransactionContext,
  queueId: string,
  span: Span,
  read: MessageRead,
): Promise<IntakeResult> {
  const { bus, log } = deps;
  const noteSize = (bytes: number) => span.setAttribute('sluice.message.size', bytes);
  if (read.kind === 'too-big') {
    noteSize(read.bytes);
    return { ok: false, error: smtpError('tooBig'), reason: 'too-big' };
  }
  if (read.kind === 'bare-newline') {
    noteSize(read.bytes);
    const error = smtpError(read.found.kind === 'LF' ? 'bareLf' : 'bareCr');
    return { ok: false, error, reason: `bare-${read.found.kind.toLowerCase()}`, disconnect: true };
  }
  if (read.kind === 'bad-content') {
    noteSize(read.bytes);
    const error = smtpError(read.found === 'nul' ? 'nulInBody' : 'lineTooLong');
    return { ok: false, error, reason: read.found, disconnect: read.found === 'nul' };
  }
  if (read.kind === 'over-budget') {
    noteSize(read.bytes);
    return { ok: false, error: smtpError('bodiesInFlightFull'), reason: 'over-budget' };
  }
  const receivedAt = new Date();
  const qlog = log.child({ queueId });
  if (read.kind === 'store-failed') {
    noteSize(read.bytes);
    qlog.warn({ err: read.error, size: read.bytes }, 'cannot store the body');
    return { ok: false, error: publishFailure(read.error), reason: 'store-failed', queueId };
  }

  // The free-space guard: refuse while JetStream can still take the mail already accepted
  // (RFC 5321 §4.2.5 452, RFC 3463 X.3.1 "mail system full"); the client retries later.
  const room = await bus.storeRoom();
  deps.metrics.storeGuardTripped.set(room.ok ? 0 : 1);
  deps.metrics.storeFreeBytes.set(room.freeBytes);
  if (!room.ok) {
    // A large body already streamed into the store: refused, it must not stay there.
    if (read.kind === 'stored') {
      await bus
        .deleteBody(read.stored.ref)
        .catch((err: unknown) => qlog.warn({ err }, 'cannot delete a refused body'));
    }
    return { ok: false, error: smtpError('queueFull'), reason: 'store-low', queueId };
  }

  let stored: { ref: BodyRef; inline?: Uint8Array };
  let head: Uint8Array;
  if (read.kind === 'stored') {
    stored = read.stored;
    head = read.head;
  } else {
    head = read.body;
    try {
      stored = await bus.storeBody(queueId, read.body);
    } catch (err) {
      qlog.warn({ err, size: read.body.length }, 'cannot store the body');
      return { ok: false, error: publishFailure(err), reason: 'store-failed', queueId };
    }
  }
  const size = stored.ref.size;
  noteSize(size);
  const forget = async () => {
    if (stored.ref.kind !== 'object') return;
    await bus
      .deleteBody(stored.ref)
      .catch((err: unknown) => qlog.warn({ err }, 'cannot delete a refused body'));
  };

  const refusedHead = tx.checkHead ? await tx.checkHead(head) : undefined;
  if (refusedHead) {
    await forget();
    return { ok: false, error: refusedHead.error, reason: refusedHead.reason, queueId };
  }

  const stage = deps.door?.stage ?? 'ingress';
  const env: Envelope = buildEnvelope({
    queueId,
    receivedAt,
    receivedBy: deps.hostname,
    instance: deps.instance,
    client: tx.client,
    mailFrom: tx.mailFrom,
    mailParams: tx.mailParams,
    recipients: tx.recipients,
    body: stored.ref,
    traceparent: traceparentOf(span.spanContext()),
    ...(deps.door ? { source: deps.door.source, stage } : {}),
    ...(tx.auth ? { auth: tx.auth } : {}),
  });

  // The before-queue verdict (RELIABILITY-NOTES §1 rule 5: refuse before 250, never bounce later).
  const answer = deps.skipFilter ? undefined : await askFilter(deps, encodeEnvelope(env, stored.inline));
  // 'received' (at the time DATA ended) is recorded once the verdict is in: with the filter in this
  // process its 'verdict' event is recorded in the same turn, and the two are one NATS message
  // (event-log.ts); readers order a timeline by `at`. Whatever the filter did, it is recorded.
  await bus.recordEvent({
    ...eventBase({
      envelope: env,
      stage,
      instance: deps.instance,
      traceId: env.trace?.traceparent.split('-')[1],
      at: receivedAt,
    }),
    kind: 'received',
    client: deps.redact.ip(tx.client.ip),
    helo: tx.client.helo,
    mailFrom: deps.redact.address(tx.mailFrom),
    recipients: tx.recipients.map((r) => deps.redact.address(r.address)),
    size,
    messageId: messageIdOf(head),
  });

  const outcome = answer ? filterOutcome(answer) : UNFILTERED;
  if (outcome.kind === 'refuse') {
    if (outcome.reason === 'filter-busy')
      qlog.warn({ asked: 2 }, 'filter busy: both replicas asked were saturated, message shed with 451 4.3.2');
    else if (answer && 'error' in answer) qlog.warn({ err: answer.error }, 'no verdict from the filter');
    await forget();
    return { ok: false, error: outcome.error, reason: outcome.reason, queueId };
  }
  const verdict = outcome.reply;

  // Our Received on top, then what the filter added (RFC 5321 §4.4: trace headers go at the top).
  env.prepend = [
    receivedHeader({
      helo: tx.client.helo,
      ehlo: tx.ehlo,
      clientIp: tx.client.ip,
      hideClient: deps.received?.hideClient,
      tls: tx.client.tls,
      hideTlsDetails: deps.received?.hideTls,
      authenticated: tx.auth !== undefined,
      smtputf8: tx.smtputf8,
      receivedBy: deps.hostname,
      queueId,
      recipients: tx.recipients.map((r) => r.address),
      date: receivedAt,
      addedBy: stage,
    }),
    ...(deps.received?.hideClient
      ? verdict.prepend.filter((h) => !namesClient(h.value, tx.client))
      : verdict.prepend),
  ];
  env.verdict = verdict.verdict;
  if (verdict.auth) env.auth = verdict.auth;
  // Header fields of the body the egress leaves out (forged Authentication-Results, RFC 8601 §5).
  if (verdict.removeHeaders?.length) env.removeHeaders = verdict.removeHeaders;

  const msgId = dedupIds.accepted(env);
  // Before the publish, so a resend after a lost 250 can name this queue id (dedup-index.ts).
  bus.noteDedupId(msgId, { queueId });
  let ack: { seq: number; duplicate: boolean };
  try {
    ack = await bus.publishEnvelope(subjects.resolve, env, stored.inline, { msgId });
  } catch (err) {
    qlog.error({ err }, 'queue did not take the message');
    return { ok: false, error: publishFailure(err), reason: 'publish-failed', queueId };
  }
  if (ack.duplicate) {
    // The client resent a message we already queued (it lost our 250): it is queued once.
    const first = await bus.firstQueueIdOf(msgId, queueId).catch((err: unknown) => {
      qlog.warn({ err }, 'cannot look up the first copy of a duplicate');
      return undefined;
    });
    qlog.info({ msgId, seq: ack.seq, duplicateOf: first }, 'duplicate of a message already queued');
    if (first) bus.noteDedupId(msgId, { queueId, duplicateOf: first });
    // Its own timeline ends here, naming the queue id the first copy travels under.
    await bus.recordEvent({
      ...eventBase({
        envelope: env,
        stage,
        instance: deps.instance,
        traceId: env.trace?.traceparent.split('-')[1],
      }),
      kind: 'duplicate',
      msgId,
      ...(first ? { duplicateOf: first } : {}),
    });
    await forget();
  }
  return { ok: true, queueId, text: queuedTextOf(queueId), duplicate: ack.duplicate };
}

/** Whether a header value names the client's address or its HELO (privacy of submission clients). */
function namesClient(value: string, client: { ip: string; helo: string }): boolean {
  const v = value.toLowerCase();
  return v.includes(client.ip.toLowerCase()) || (client.helo !== '' && v.includes(client.helo.toLowerCase()));
}

/** The 250 text after DATA (smtp-server adds the code; the enhanced code leads the text). */
export function queuedTextOf(queueId: string): string {
  const r = queuedReply(queueId);
  return `${r.enhanced} ${r.text}`;
}
