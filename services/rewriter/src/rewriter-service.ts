/**
 * The rewriter service: consumes the rewrite stream (consumers.rewriter),
 * applies rewriteEnvelope (rewrite.ts: today only the hop; SRS, DKIM and ARC
 * plug in there) and publishes the part to subjects.deliver with the
 * deterministic Nats-Msg-Id dedupIds.deliver(partId) BEFORE acking its input. The
 * 'rewritten' event (the list of changes) is recorded just before the publish,
 * so the timeline reads in order.
 *
 * Trust: holds (later) the SRS secrets and DKIM keys; reads envelopes only
 * from the rewrite stream and writes only to the deliver stream and the
 * timeline.
 */
import type { Disposition, EnvelopeDelivery } from '@sluice/bus';
import { activeTraceFields } from '@sluice/log';
import { consumers, dedupIds, envelopeKey, eventBase, subjects } from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { rewriteEnvelope } from './rewrite.ts';

export type RewriterDeps = Pick<ServiceContext, 'bus' | 'log' | 'instance'> & { now?: () => Date };

/** The rewrite stage's handler for one part. */
export async function rewritePart(d: EnvelopeDelivery, deps: RewriterDeps): Promise<Disposition> {
  const now = deps.now ?? (() => new Date());
  const { envelope, changes } = rewriteEnvelope(d.envelope, { instance: deps.instance, now });
  const key = envelopeKey(envelope);
  await deps.bus.recordEvent({
    ...eventBase({
      envelope,
      stage: 'rewriter',
      instance: deps.instance,
      traceId: activeTraceFields().trace_id,
      at: now(),
    }),
    kind: 'rewritten',
    changes,
  });
  await deps.bus.publishEnvelope(subjects.deliver, envelope, d.inlineBody, {
    msgId: dedupIds.deliver(key),
  });
  deps.log.debug({ queueId: envelope.id, partId: key, changes }, 'rewritten');
  return { kind: 'ack' };
}

export function createRewriterService(): ServiceDefinition {
  return {
    name: 'rewriter',
    async start(ctx: ServiceContext): Promise<RunningService> {
      const concurrency = ctx.config.rewriter.concurrency;
      const consumer = ctx.bus.consumeEnvelopes(consumers.rewriter, { concurrency }, async (d) => {
        const t0 = performance.now();
        const disposition = await rewritePart(d, ctx);
        ctx.metrics.stageProcessed.inc({ stage: 'rewriter', outcome: disposition.kind });
        ctx.metrics.stageDuration.observe({ stage: 'rewriter' }, (performance.now() - t0) / 1000);
        return disposition;
      });
      return { name: 'rewriter', stop: () => consumer.stop(), info: () => ({ concurrency }) };
    },
  };
}

export const rewriterService: ServiceDefinition = createRewriterService();
