/**
 * The delivery queue around one delivery of a part from the deliver stream
 * (docs/egress-queue.md, docs/decisions/0030): what the egress does with a
 * part before and after deliver.ts attempts it.
 *
 * Before:
 *   - a part delivered before (postponed, deferred, woken by an operator)
 *     reads its queue entry (queue-index.ts); a copy older than the entry's
 *     last wake is stale (an operator moved the part) and is dropped;
 *   - held by an operator: postponed, no attempt;
 *   - an operator's bounce or delete: the remaining recipients fail now,
 *     without a connection, through deliver.ts' normal ending (DSN for a
 *     bounce, none for a delete; ledger before the ack: decision 0008);
 *   - the scheduler (destination-scheduler.ts) decides whether it may go now;
 *     if not, it is postponed (not an attempt, no delivery slot held) and, for
 *     a busy or paced destination, counted in memory (postponed-parts.ts). A part
 *     waiting for a backed-off destination is listed in the index with the
 *     backoff's end as its next attempt; one past its lifetime expires there
 *     (expiry DSN) without an attempt.
 * After an attempt:
 *   - the destination is backed off for every replica when it answered 421 or
 *     no session could be opened, and cleared when it answered at all;
 *   - a deferred part's entry is written (next attempt, attempts, last reply),
 *     merged with anything an operator set meanwhile; a part that is done
 *     leaves the index.
 */
import type { Disposition, EnvelopeDelivery } from '@sluice/bus';
import { envelopeKey } from '@sluice/proto';
import { deliverPart, type EgressDeps } from './deliver.ts';
import type { DestinationScheduler } from './destination-scheduler.ts';
import type { DestinationStates } from './destination-states.ts';
import { localReplies } from './local-replies.ts';
import type { Outcome } from './outcome.ts';
import { replyCode } from './outcome.ts';
import type { PostponedParts } from './postponed-parts.ts';
import { destinationOf } from './queue-destination.ts';
import type { QueueEntry, QueueIndex, QueueRow } from './queue-index.ts';
import { isExpired } from './retry-schedule.ts';

/** How long a held part waits before it looks at its entry again (a release wakes it at once). */
export const HOLD_RECHECK_MS = 3600_000;

export interface DeliveryQueue {
  index: QueueIndex;
  /** Parts postponed for a busy or paced destination, counted in memory (postponed-parts.ts). */
  postponed: PostponedParts;
  states: DestinationStates;
  scheduler: DestinationScheduler;
}

/** A reply that says the destination itself failed: 421 (RFC 5321 §3.8), or no session could be opened. */
export function destinationFailure(
  results: ReadonlyArray<{ outcome: Outcome; reply: string }>,
): string | undefined {
  if (results.length === 0 || results.some((r) => r.outcome !== 'deferred')) return undefined;
  const hit = results.find(
    (r) =>
      replyCode(r.reply) === 421 ||
      r.reply.startsWith('451 4.4.1 (sluice)') ||
      r.reply.startsWith('451 4.4.2 (sluice) delivery attempt timed out'),
  );
  return hit?.reply;
}

export async function deliverQueued(
  d: EnvelopeDelivery,
  deps: EgressDeps,
  queue: DeliveryQueue,
): Promise<Disposition> {
  const env = d.envelope;
  if (!env.route) return deliverPart(d, deps); // dead-lettered there: it did not pass the resolver
  const partId = envelopeKey(env);
  const destination = destinationOf(env.route);
  const log = deps.log.child({ queueId: env.id, partId, destination });
  const now = deps.now ?? Date.now;
  queue.postponed.forget(partId); // it came back here

  const known = (d.deliveredTimes ?? d.deliveryCount) > 1 || env.queueWake !== undefined;
  let row = known ? await queue.index.read(partId) : null;
  if (row && (env.queueWake ?? 0) > row.value.wakes) {
    // A woken copy that came up before the operator's request named it in the entry: it takes over.
    const wake = env.queueWake ?? 0;
    await queue.index.change(partId, row, (cur) =>
      cur && cur.wakes < wake ? { ...cur, wakes: wake, streamSeq: d.streamSeq } : null,
    );
    row = await queue.index.read(partId);
  }
  const entry = row?.value;
  if (entry && (env.queueWake ?? 0) < entry.wakes) {
    log.info(
      { wake: env.queueWake ?? 0, current: entry.wakes },
      'stale copy of a part an operator moved: dropped',
    );
    return { kind: 'ack' };
  }
  if (entry?.state === 'held') {
    deps.metrics.egressPostponed.inc({ reason: 'held' });
    return { kind: 'postpone', delayMs: HOLD_RECHECK_MS, reason: 'held by the postmaster' };
  }
  const attempt = entry ? entry.attempts + 1 : d.deliveryCount;
  if (entry?.command) {
    const forced =
      entry.command === 'bounce'
        ? { outcome: 'failed' as const, reply: localReplies.operatorBounce(), notify: true }
        : { outcome: 'failed' as const, reply: localReplies.operatorDelete(), notify: false };
    log.warn({ command: entry.command }, 'queue command carried out');
    return settle(
      await deliverPart({ ...d, deliveryCount: attempt }, { ...deps, forced }),
      partId,
      row,
      queue,
    );
  }

  const admission = await queue.scheduler.admit(destination, partId, entry?.retryNow === true);
  if (admission.kind === 'wait') {
    deps.metrics.egressPostponed.inc({ reason: admission.cause });
    if (!admission.backoff) {
      // Busy or paced: counted in memory for `sluice queue list`, no index write (decision 0042).
      queue.postponed.note(partId, destination, now() + admission.delayMs);
      return { kind: 'postpone', delayMs: admission.delayMs, reason: admission.reason };
    }
    if (isExpired(env.receivedAt, now(), deps.config.bus.queueLifetime)) {
      // Past its lifetime while its destination is backed off: expires without another attempt.
      const forced = { outcome: 'deferred' as const, reply: admission.backoff.reason, notify: true };
      return settle(
        await deliverPart({ ...d, deliveryCount: attempt }, { ...deps, forced }),
        partId,
        row,
        queue,
      );
    }
    const nextAttemptAt = new Date(now() + admission.delayMs).toISOString();
    const written = await queue.index.change(partId, row, (current) =>
      current && current.nextAttemptAt === nextAttemptAt
        ? null
        : entryFor(d, destination, current, { nextAttemptAt, lastReply: admission.backoff!.reason }),
    );
    return afterOperator(written, { kind: 'postpone', delayMs: admission.delayMs, reason: admission.reason });
  }

  let results: ReadonlyArray<{ outcome: Outcome; reply: string }> = [];
  let disposition: Disposition;
  try {
    disposition = await deliverPart(
      { ...d, deliveryCount: attempt },
      { ...deps, onAttempt: (r) => (results = r) },
    );
  } finally {
    admission.done();
  }
  const failure = destinationFailure(results);
  if (failure) {
    const state = await queue.states.failed(destination, failure);
    deps.metrics.destinationBackoffs.inc();
    log.info({ until: state.until, failures: state.failures, reply: failure }, 'destination backed off');
  } else if (results.length > 0 && queue.states.of(destination)) {
    await queue.states.clear(destination);
    log.info('destination answers again: backoff cleared');
  }
  if (disposition.kind !== 'retry') return settle(disposition, partId, row, queue);

  const lastReply = results.find((r) => r.outcome === 'deferred')?.reply ?? disposition.reason;
  const nextAttemptAt = new Date(now() + disposition.delayMs).toISOString();
  const written = await queue.index.change(partId, row, (current) =>
    entryFor(d, destination, current, { nextAttemptAt, lastReply, attempts: attempt, retryNow: false }),
  );
  if (written && written.wakes > (env.queueWake ?? 0)) {
    return { kind: 'ack' }; // an operator woke the part during the attempt: the new copy carries on
  }
  return afterOperator(written, disposition);
}

/** The entry of a waiting part, keeping what an operator set on the current one. */
function entryFor(
  d: EnvelopeDelivery,
  destination: string,
  current: QueueEntry | undefined,
  change: Partial<QueueEntry>,
): QueueEntry {
  const env = d.envelope;
  return {
    partId: envelopeKey(env),
    queueId: env.id,
    destination,
    state: 'deferred',
    attempts: 0,
    recipients: env.recipients.filter((r) => r.status === 'pending' || r.status === 'deferred').length,
    receivedAt: env.receivedAt,
    wakes: env.queueWake ?? 0,
    ...current,
    ...change,
    streamSeq: current && current.wakes > (env.queueWake ?? 0) ? current.streamSeq : d.streamSeq,
  };
}

/** An operator acted while the part was being attempted: a hold or a command wins over the schedule. */
function afterOperator(written: QueueEntry | null, disposition: Disposition): Disposition {
  if (written?.state === 'held') {
    return { kind: 'postpone', delayMs: HOLD_RECHECK_MS, reason: 'held by the postmaster' };
  }
  if (written?.command) return { kind: 'postpone', delayMs: 0, reason: `queue command ${written.command}` };
  return disposition;
}

/** The part is done (acked or dead-lettered): it leaves the index. */
async function settle(
  disposition: Disposition,
  partId: string,
  row: QueueRow | null,
  queue: DeliveryQueue,
): Promise<Disposition> {
  if (disposition.kind !== 'retry' && disposition.kind !== 'postpone' && row)
    await queue.index.remove(partId);
  return disposition;
}
