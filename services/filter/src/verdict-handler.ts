/**
 * One before-queue verdict request, end to end: decode the envelope the
 * ingress sent (proto codec; invalid bytes are refused, not guessed at), load
 * the body (inline, or streamed from the object store), compute the verdict, record it
 * on the message timeline, and answer the FilterReply as JSON.
 *
 * The request carries the ingress' deadline (headerNames.deadline, epoch ms):
 * a request that arrives after it is dropped unanswered-for (nobody waits),
 * and the engines and SPF are bounded by the time left. The timeline event is
 * written off the reply path: the reply goes out first, the event follows
 * (recordEvent never throws; a lost event is logged by the bus).
 *
 * A request that cannot be answered (bad envelope, body missing, a failure
 * inside the checks) throws: the bus answers an RPC error and the ingress
 * replies 451 4.3.0, so the client retries later. Nothing is accepted without
 * a verdict.
 */
import type { BusClient, RpcRequest } from '@sluice/bus';
import type { Logger } from '@sluice/log';
import { decodeEnvelope, eventBase, type FilterReply, headerNames } from '@sluice/proto';
import { type Metrics, runInSpan } from '@sluice/telemetry';
import { largeMessageContent } from './message-content.ts';
import { authenticationSource } from './message-source.ts';
import { computeVerdict, type VerdictDeps } from './verdict.ts';

export interface VerdictHandlerDeps extends VerdictDeps {
  bus: BusClient;
  log: Logger;
  metrics: Metrics;
  instance: string;
}

const encoder = new TextEncoder();

/**
 * The reply's bytes. Validated once per hop, by the reader (the intake's filterOutcome parses it
 * with filterReplySchema and answers 451 to anything it cannot read), as envelopes are (0036).
 */
export function encodeFilterReply(reply: FilterReply): Uint8Array {
  return encoder.encode(JSON.stringify(reply));
}

export async function handleVerdictRequest(req: RpcRequest, deps: VerdictHandlerDeps): Promise<Uint8Array> {
  const { envelope, body: inline } = decodeEnvelope(req.data);
  return runInSpan(
    'filter verdict',
    { attributes: { 'sluice.queue_id': envelope.id, 'sluice.message.size': envelope.body.size } },
    async (span) => {
      const started = performance.now();
      const deadline = requestDeadline(req.headers);
      if (Date.now() >= deadline) throw new Error('request arrived after its deadline: nobody waits for it');
      // A large body is streamed through the checks (DKIM hashes it as it passes), never held
      // whole; unsigned, only its header section is read (message-source.ts). The content rules
      // get the header section and the engines a fresh stream of their own (messageContent).
      const large = envelope.body.kind === 'object';
      const body = large
        ? await authenticationSource(await deps.bus.openBody(envelope))
        : await deps.bus.loadBody(envelope, inline);
      const content = large ? await largeMessageContent(envelope, deps.bus) : undefined;
      const left = deadline - Date.now();
      const limit = Math.min(deps.spfTimeLimitMs ?? left, left - SAFETY_MS);
      const spfTimeLimitMs = Number.isFinite(limit) ? Math.max(1, limit) : undefined;
      const reply = await computeVerdict(
        envelope,
        body,
        { ...deps, spfTimeLimitMs },
        deadline - SAFETY_MS,
        content,
      );
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
      // Engines and lists that did not answer are an operator's problem, not the sender's: say so.
      for (const r of verdict.rules) {
        if (/^(ENGINE_FAILED|ENGINE_SKIPPED|DNSBL_SKIPPED|GREYLIST_SKIPPED)$/.test(r.name)) {
          deps.log.warn({ queueId: envelope.id, rule: r.name, detail: r.detail }, 'a check could not run');
        }
      }
      void deps.bus.recordEvent({
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

/** Margin kept before the deadline for the reply to travel back, ms. */
const SAFETY_MS = 200;

/** The requester's deadline, epoch ms; none given: no limit beyond our own timeouts. */
export function requestDeadline(headers: Record<string, string> | undefined): number {
  const raw = headers?.[headerNames.deadline];
  const n = raw ? Number(raw) : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : Number.POSITIVE_INFINITY;
}
