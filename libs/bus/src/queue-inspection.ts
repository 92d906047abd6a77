/**
 * Read-only views for operators and the runtime: a message's timeline (its
 * events, in order, for `sluice trace`) and a stage's backlog (for the queue
 * depth gauge). The timeline is read with direct gets (next message on the
 * message's own subject after a sequence), so a lookup creates no consumer on
 * the server; events that do not parse are skipped rather than failing the
 * whole trace.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { type ConsumerSpec, eventSchema, type SluiceEvent, streams, subjects } from '@sluice/proto';

/** Upper bound on events read for one message (a loop guard, far above any real timeline). */
export const MAX_TIMELINE_EVENTS = 10_000;

export async function readTimeline(jsm: JetStreamManager, queueId: string): Promise<SluiceEvent[]> {
  if (!/^[0-9A-Za-z_-]{1,64}$/.test(queueId)) {
    throw new Error(`${JSON.stringify(queueId)} is not a queue id`);
  }
  const subject = subjects.event(queueId);
  const events: SluiceEvent[] = [];
  let seq = 0;
  for (let i = 0; i < MAX_TIMELINE_EVENTS; i++) {
    const m = await jsm.direct.getMessage(streams.events.name, { seq: seq + 1, next_by_subj: subject });
    if (m === null) break;
    seq = m.seq;
    // One stored message holds one event, or several of one turn (event-log.ts).
    const raw = safeJson(m.data);
    for (const item of Array.isArray(raw) ? raw : [raw]) {
      const parsed = eventSchema.safeParse(item);
      if (parsed.success) events.push(parsed.data);
    }
  }
  // In time order: events of different processes may be stored in another order than they happened.
  return events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

function safeJson(data: Uint8Array): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(data));
  } catch {
    return undefined;
  }
}

export interface ConsumerLag {
  /** Messages not yet delivered to the stage. */
  pending: number;
  /** Delivered and not yet acked: in progress, or waiting out a retry delay. */
  ackPending: number;
  /** Redelivered at least once (a sign of failing or slow handlers). */
  redelivered: number;
}

export async function consumerLag(jsm: JetStreamManager, spec: ConsumerSpec): Promise<ConsumerLag> {
  const ci = await jsm.consumers.info(spec.stream, spec.durable);
  return { pending: ci.num_pending, ackPending: ci.num_ack_pending, redelivered: ci.num_redelivered };
}

/** The replica count each Sluice stream actually has on the server (operators and tests check R3). */
export async function streamReplicas(jsm: JetStreamManager): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const spec of Object.values(streams)) {
    const si = await jsm.streams.info(spec.name);
    out[spec.name] = si.config.num_replicas;
  }
  return out;
}
