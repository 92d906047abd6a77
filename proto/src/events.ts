/**
 * Timeline events: what each stage decided about a message, one JSON record
 * per decision on `sluice.v1.events.<queueId>` (stream SLUICE_EVENTS, limits
 * retention). `sluice trace QUEUE-ID` reads them back in order. Events are a
 * discriminated union on `kind`; addresses in them pass through the log
 * privacy setting (clear, hashed or dropped) before they are written.
 */
import { z } from 'zod';

const base = {
  v: z.literal(1),
  queueId: z.string(),
  partId: z.string().optional(),
  at: z.iso.datetime(),
  stage: z.string(),
  instance: z.string(),
  traceId: z.string().optional(),
};

export const eventSchema = z.discriminatedUnion('kind', [
  z.object({
    ...base,
    kind: z.literal('received'),
    client: z.string(),
    helo: z.string(),
    mailFrom: z.string(),
    recipients: z.array(z.string()),
    size: z.number(),
    messageId: z.string().optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('verdict'),
    action: z.string(),
    score: z.number(),
    rules: z.array(z.string()),
    spf: z.string().optional(),
    dkim: z.string().optional(),
    dmarc: z.string().optional(),
  }),
  z.object({
    ...base,
    kind: z.literal('resolved'),
    recipient: z.string(),
    targets: z.array(z.string()),
    route: z.string(),
    source: z.string(),
  }),
  z.object({ ...base, kind: z.literal('rewritten'), changes: z.array(z.string()) }),
  z.object({
    ...base,
    kind: z.literal('delivery'),
    recipient: z.string(),
    outcome: z.enum(['delivered', 'deferred', 'failed']),
    host: z.string().optional(),
    reply: z.string(),
    attempt: z.number().int(),
    tls: z.string().optional(),
    nextAttemptAt: z.string().optional(),
  }),
  z.object({ ...base, kind: z.literal('dead-lettered'), reason: z.string() }),
  /** A resend the resolve stream dropped as a duplicate (same Nats-Msg-Id): queued once, as `duplicateOf`. */
  z.object({
    ...base,
    kind: z.literal('duplicate'),
    /** The queue id the first copy was queued as, when it could be found. */
    duplicateOf: z.string().optional(),
    msgId: z.string(),
  }),
]);
export type SluiceEvent = z.infer<typeof eventSchema>;
export type SluiceEventKind = SluiceEvent['kind'];

/** The fields every event shares: which message (and part), when, by which stage and process, in which trace. */
export interface EventBase {
  v: 1;
  queueId: string;
  partId?: string;
  at: string;
  stage: string;
  instance: string;
  traceId?: string;
}

/** Build the shared fields of an event about `envelope` (its part id is kept when it has one). */
export function eventBase(opts: {
  envelope: { id: string; partId?: string };
  stage: string;
  instance: string;
  traceId?: string;
  at?: Date;
}): EventBase {
  const base: EventBase = {
    v: 1,
    queueId: opts.envelope.id,
    at: (opts.at ?? new Date()).toISOString(),
    stage: opts.stage,
    instance: opts.instance,
  };
  if (opts.envelope.partId !== undefined) base.partId = opts.envelope.partId;
  if (opts.traceId !== undefined) base.traceId = opts.traceId;
  return base;
}
