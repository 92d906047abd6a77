/**
 * The per-message timeline: each stage's decisions as JSON events on
 * `sluice.v1.events.<queueId>` (limits-retention stream), read back in order
 * by `sluice trace`. Recording is best effort by contract: a lost event is
 * logged, never a reason to fail or delay mail, so recordEvent never throws.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { headerNames, type SluiceEvent, subjects } from '@sluice/proto';
import type { BusLog } from './bus-log.ts';
import { publishDurable, type WaitForConnection } from './publish.ts';
import { injectTraceHeaders } from './trace-headers.ts';

/** Value of the Sluice-Content header on timeline events. */
export const EVENT_CONTENT = 'event/v1';

/** Queue ids become a subject token: refuse anything that could be a wildcard or a separator. */
const SUBJECT_TOKEN = /^[0-9A-Za-z_-]{1,64}$/;

const encoder = new TextEncoder();

export async function recordEvent(
  js: JetStreamClient,
  log: BusLog,
  event: SluiceEvent,
  timeoutMs: number,
  ready?: WaitForConnection,
): Promise<void> {
  try {
    if (!SUBJECT_TOKEN.test(event.queueId)) {
      throw new Error(`queue id ${JSON.stringify(event.queueId)} is not a valid subject token`);
    }
    const hdrs = injectTraceHeaders(natsHeaders());
    hdrs.set(headerNames.contentType, EVENT_CONTENT);
    await publishDurable(js, subjects.event(event.queueId), encoder.encode(JSON.stringify(event)), {
      headers: hdrs,
      timeoutMs,
      ready,
    });
  } catch (err) {
    log.warn({ queueId: event.queueId, kind: event.kind, err }, 'timeline event lost');
  }
}
