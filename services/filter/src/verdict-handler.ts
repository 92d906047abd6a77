/**
 * One before-queue verdict request, end to end: decode the envelope the
 * ingress sent (proto codec; invalid bytes are refused, not guessed at), load
 * the body (inline, or streamed from the object store), compute the verdict, record it
 * on the message timeline, and answer the FilterReply as JSON.
 *
 * A request that cannot be answered (bad envelope, body missing, a failure
 * inside the checks) throws: the bus answers an RPC error and the ingress
 * replies 451 4.3.0, so the client retries later. Nothing is accepted without
 * a verdict.
 */
import type { BusClient, RpcRequest } from '@sluice/bus';
import type { Logger } from '@sluice/log';
import { decodeEnvelope, eventBase, type FilterReply, filterReplySchema } from '@sluice/proto';
import { type Metrics, runInSpan } from '@sluice/telemetry';
import { authenticationSource } from './message-source.ts';
import { computeVerdict, type VerdictDeps } from './verdict.ts';

export interface VerdictHandlerDeps extends VerdictDeps {
  bus: BusClient;
  log: Logger;
  metrics: Metrics;
  instance: string;
}

const encoder = new TextEncoder();

export function encodeFilterReply(reply: FilterReply): Uint8Array {
  return encoder.encode(JSON.stringify(filterReplySchema.parse(reply)));
}

export async function handleVerdictRequest(req: RpcRequest, deps: VerdictHandlerDeps): Promise<Uint8Array> {
  const { envelope, body: inline } = decodeEnvelope(req.data);
  return runInSpan(
    'filter verdict',
    { attributes: { 'sluice.queue_id': envelope.id, 'sluice.message.size': envelope.body.size } },
    async (span) => {
      const started = performance.now();
      // A large body is streamed through the checks (DKIM hashes it as it passes), never held
      // whole; unsigned, only its header section is read (message-source.ts).
      const body =
        envelope.body.kind === 'object'
          ? await authenticationSource(await deps.bus.openBody(envelope))
          : await deps.bus.loadBody(envelope, inline);
      const reply = await computeVerdict(envelope, body, deps);
      const { verdict, auth } = reply;
      span.setAttributes({
        'sluice.verdict.action': verdict.action,
        'sluice.verdict.score': verdict.score,
        'sluice.auth.spf': auth?.spf ?? 'none',
        'sluice.auth.dmarc': auth?.dmarc ?? 'none',
      });
      deps.metrics.verdicts.inc({ action: verdict.action });
      deps.metrics.stageDuration.observe({ stage: 'filter' }, (performance.now() - started) / 1000);
      const dkim = auth?.dkim.map((d) => `${d.domain}:${d.result}`).join(',') || 'none';
      deps.log.info(
        {
          queueId: envelope.id,
          action: verdict.action,
          score: verdict.score,
          spf: auth?.spf,
          dkim,
          dmarc: auth?.dmarc,
          ms: Math.round(performance.now() - started),
        },
        'verdict',
      );
      await deps.bus.recordEvent({
        ...eventBase({
          envelope,
          stage: 'filter',
          instance: deps.instance,
          traceId: span.spanContext().traceId,
        }),
        kind: 'verdict',
        action: verdict.action,
        score: verdict.score,
        rules: verdict.rules.map((r) => r.name),
        spf: auth?.spf,
        dkim,
        dmarc: auth?.dmarc,
      });
      return encodeFilterReply(reply);
    },
  );
}
