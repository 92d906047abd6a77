/**
 * The rewriter service: consumes the rewrite stream (consumers.rewriter),
 * applies rewriteEnvelope (rewrite.ts: SRS, header hygiene, the hop), then
 * the optional From rewrite of forwards (from-rewrite.ts), then
 * signAndSeal (signing.ts: DKIM for our From, ARC for forwards) and
 * publishes the part to subjects.deliver with the deterministic Nats-Msg-Id
 * dedupIds.deliver(partId) BEFORE acking its input. The 'rewritten' event
 * (the list of changes) is recorded just before the publish, so the timeline
 * reads in order.
 *
 * Start-up fails on bad key configuration, naming the key (rewriter-setup.ts).
 *
 * Trust: holds the SRS secrets and DKIM keys; reads envelopes only from the
 * rewrite stream and writes only to the deliver stream and the timeline.
 */
import type { Disposition, EnvelopeDelivery } from '@sluice/bus';
import { splitMessage, streamedMessageParts } from '@sluice/dkim';
import { activeTraceFields } from '@sluice/log';
import { consumers, dedupIds, envelopeKey, eventBase, subjects } from '@sluice/proto';
import type { RunningService, ServiceContext, ServiceDefinition } from '@sluice/runtime';
import { fromRewriteCandidate, planFromRewrite } from './from-rewrite.ts';
import { monitorPublishedKeys, txtResolver } from './published-keys.ts';
import { rewriteEnvelope } from './rewrite.ts';
import { type RewriterSetup, rewriterSetup } from './rewriter-setup.ts';
import { needsWholeBody, signAndSeal } from './signing.ts';

export type RewriterDeps = Pick<ServiceContext, 'bus' | 'log' | 'instance' | 'metrics'> &
  Partial<Pick<ServiceContext, 'redact'>> & {
    now?: () => Date;
    setup: RewriterSetup;
  };

/** The rewrite stage's handler for one part. */
export async function rewritePart(d: EnvelopeDelivery, deps: RewriterDeps): Promise<Disposition> {
  const now = deps.now ?? (() => new Date());
  const { setup } = deps;
  const rewritten = rewriteEnvelope(d.envelope, {
    instance: deps.instance,
    now,
    srs: setup.srs,
    ourDomains: setup.ourDomains,
    redactAddress: deps.redact ? (a) => deps.redact!.address(a) : undefined,
  });
  let envelope = rewritten.envelope;
  const changes = [...rewritten.changes];
  deps.metrics.rewrites.inc({ step: 'srs', outcome: rewritten.srs });
  const log = deps.log.child({ queueId: envelope.id, partId: envelopeKey(envelope) });
  const signing = setup.signing.keyring.keys.length > 0 || setup.signing.arcKey !== undefined;
  const fromCandidate = fromRewriteCandidate(envelope, setup.fromRewrite);
  if (signing || fromCandidate.ok) {
    // A large body that will not be sealed is hashed as it streams, never held whole (signing.ts).
    const body =
      envelope.body.kind === 'object' && !needsWholeBody(envelope, setup.signing)
        ? await streamedMessageParts(await deps.bus.openBody(envelope, d.inlineBody))
        : await deps.bus.loadBody(envelope, d.inlineBody);
    // From rewriting first (from-rewrite.ts), so DKIM and ARC sign the From that leaves.
    let fromRewritten = false;
    if (fromCandidate.ok) {
      const head = body instanceof Uint8Array ? body : Buffer.concat([body.head, Buffer.from('\r\n\r\n')]);
      const plan = planFromRewrite(envelope, splitMessage(head).headers, setup.fromRewrite);
      if (plan.rewrite) {
        envelope = {
          ...envelope,
          prepend: [...plan.prepend, ...envelope.prepend],
          removeHeaders: [...(envelope.removeHeaders ?? []), ...plan.removeHeaders],
        };
        changes.push(plan.change);
        fromRewritten = true;
      }
      deps.metrics.rewrites.inc({ step: 'from', outcome: plan.rewrite ? 'rewritten' : plan.skip });
    }
    if (signing) {
      const signed = await signAndSeal(envelope, body, { ...setup.signing, now, fromRewritten });
      envelope = signed.envelope;
      changes.push(...signed.changes);
      deps.metrics.rewrites.inc({ step: 'dkim', outcome: signed.dkim });
      deps.metrics.rewrites.inc({ step: 'arc', outcome: signed.arc });
      for (const w of signed.warnings) log.warn({ dkim: signed.dkim, arc: signed.arc }, w);
    }
  }
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
  // A full deliver stream holds this part until it has room (backpressure), never a dead letter.
  await deps.bus.publishEnvelope(subjects.deliver, envelope, d.inlineBody, {
    msgId: dedupIds.deliver(key),
    whileFull: d.hold,
  });
  log.debug({ changes }, 'rewritten');
  return { kind: 'ack' };
}

export function createRewriterService(): ServiceDefinition {
  return {
    name: 'rewriter',
    async start(ctx: ServiceContext): Promise<RunningService> {
      const setup = rewriterSetup(ctx.config);
      // Active keys are checked against DNS at start and every dkim.dnsCheckInterval seconds.
      const monitor = monitorPublishedKeys({
        keys: setup.signing.keyring.keys,
        resolveTxt: txtResolver(ctx.config.dns.servers, ctx.config.dns.timeout),
        intervalSeconds: ctx.config.dkim.dnsCheckInterval,
        onCheck: (c) => {
          ctx.metrics.rewrites.inc({ step: 'dkim-dns', outcome: c.status });
          if (c.status === 'match') ctx.log.info({ key: c.key.name }, c.detail);
          else if (c.status === 'dns-error')
            ctx.log.warn({ key: c.key.name }, `DKIM key check failed: ${c.detail}`);
          else ctx.log.error({ key: c.key.name }, `DKIM key set aside (not signing with it): ${c.detail}`);
        },
      });
      if (ctx.config.dkim.dnsCheckInterval > 0) {
        monitor.checkNow().catch((err: unknown) => ctx.log.warn({ err }, 'DKIM key check failed'));
      }
      setup.signing.setAside = monitor.setAside;
      const concurrency = ctx.config.rewriter.concurrency;
      // A part the resolver publishes in this process is rewritten in its path (no rewrite-stream
      // write, in-process-handover.ts); the consumer takes what reaches the stream.
      const consumer = ctx.bus.consumeEnvelopes(
        consumers.rewriter,
        { concurrency, handover: true },
        async (d) => {
          const t0 = performance.now();
          const held = d.hold && {
            ...d.hold,
            onFull: () => ctx.metrics.backpressureWaits.inc({ stage: 'rewriter' }),
          };
          const disposition = await rewritePart({ ...d, hold: held }, { ...ctx, setup });
          ctx.metrics.stageProcessed.inc({ stage: 'rewriter', outcome: disposition.kind });
          ctx.metrics.stageDuration.observe({ stage: 'rewriter' }, (performance.now() - t0) / 1000);
          return disposition;
        },
      );
      return {
        name: 'rewriter',
        async stop() {
          monitor.stop();
          await consumer.stop();
        },
        info: () => ({ concurrency, ...setup.summary }),
      };
    },
  };
}

export const rewriterService: ServiceDefinition = createRewriterService();
