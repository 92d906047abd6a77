/**
 * The dead-letter stream: where a stage puts a message it cannot process
 * (invalid bytes, a permanent failure, too many deliveries), with the reason
 * and the stage in headers and the original bytes and headers (trace context
 * included) unchanged, so an operator can inspect and replay it. The publish
 * awaits its PubAck and throws on failure: a caller must not ack its input
 * unless the dead letter is stored.
 */
import { headers as natsHeaders } from '@nats-io/transport-node';
import { headerNames, type StageName, subjects } from '@sluice/proto';
import { type DurablePublisher, publishDurable, type WaitForConnection } from './publish.ts';
import { injectTraceHeaders } from './trace-headers.ts';

/** Longest reason kept in the header. */
export const MAX_REASON_LENGTH = 1000;

/** A header-safe reason: one line, bounded length. */
export function headerSafeReason(reason: string): string {
  const line = reason.replace(/\s*[\r\n\0]+\s*/g, ' ').trim() || 'unspecified';
  return line.length > MAX_REASON_LENGTH ? `${line.slice(0, MAX_REASON_LENGTH - 3)}...` : line;
}

export async function deadLetter(
  js: DurablePublisher,
  stage: StageName,
  reason: string,
  data: Uint8Array,
  headers: Record<string, string> | undefined,
  timeoutMs: number,
  ready?: WaitForConnection,
): Promise<void> {
  const hdrs = natsHeaders();
  let msgId: string | undefined;
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() === headerNames.msgId.toLowerCase()) msgId = v;
    else if (!/[\r\n]/.test(k) && !/[\r\n]/.test(v)) hdrs.set(k, v);
  }
  if (!hdrs.has(headerNames.traceparent)) injectTraceHeaders(hdrs);
  hdrs.set(headerNames.deadReason, headerSafeReason(reason));
  hdrs.set(headerNames.deadStage, stage);
  await publishDurable(js, subjects.dead(stage), data, { msgId, headers: hdrs, timeoutMs, ready });
}
