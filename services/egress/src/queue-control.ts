/**
 * Queue operations for `sluice queue ...` (cli/src/queue-command.ts), served
 * by every egress replica on subjects.egressQueueControl (request/reply, one
 * replica answers). They act on the shared index (queue-index.ts) and the
 * deliver stream, so any replica can serve any request:
 *
 *   list     destinations with their deferred and held counts and backoff,
 *            the parts postponed for a busy or paced destination (counted by
 *            every replica in memory, postponed-parts.ts: a count, not listed
 *            one by one), and the waiting parts (of one destination when asked);
 *   hold     marks the parts held: at their next delivery they are postponed
 *            without an attempt, until released;
 *   release  clears the hold and wakes the parts;
 *   retry    wakes the parts (a destination's backoff is cleared too);
 *   delete   / bounce: sets the command and wakes the parts; the egress then
 *            fails their remaining recipients without a connection, with a
 *            DSN to the sender for a bounce and none for a delete.
 *
 * Waking a part puts a copy at the front of the deliver stream (its queueWake
 * numbered, deduplicated by Nats-Msg-Id), records the new copy in the entry,
 * then removes the waiting one; a copy older than the entry's last wake is
 * dropped when it comes up, so a crash half way never delivers twice (and the
 * ledger still skips anyone already delivered). A part whose next attempt is
 * due is being attempted (or about to be): it is not woken, and a hold or a
 * command given for it applies when that attempt ends (queued-delivery.ts).
 */
import type { BusClient, RpcServer } from '@sluice/bus';
import type { Logger } from '@sluice/log';
import {
  decodeEnvelope,
  dedupIds,
  QUEUE_LIST_MAX_PARTS,
  type QueueControlReply,
  type QueueControlRequest,
  type QueuedPart,
  queueControlRequestSchema,
  queueGroups,
  streams,
  subjects,
} from '@sluice/proto';
import type { DestinationStates } from './destination-states.ts';
import { type PostponedCount, type PostponedSnapshot, sumPostponed } from './postponed-parts.ts';
import type { QueueEntry, QueueIndex, QueueRow } from './queue-index.ts';

/** A next attempt this close is treated as due: the part is (about to be) attempted. */
const DUE_MARGIN_MS = 1000;

export interface QueueControlDeps {
  bus: BusClient;
  index: QueueIndex;
  /** Every replica's snapshot of the parts it postponed for a busy or paced destination. */
  postponed?: () => Promise<PostponedSnapshot[]>;
  states: DestinationStates;
  log: Logger;
  now?: () => number;
}

type ActionRequest = Exclude<QueueControlRequest, { op: 'list' }>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function serveQueueControl(deps: QueueControlDeps): RpcServer {
  return deps.bus.serve(subjects.egressQueueControl, queueGroups.egress, { concurrency: 4 }, async (req) => {
    let reply: QueueControlReply;
    try {
      const parsed = queueControlRequestSchema.safeParse(JSON.parse(decoder.decode(req.data)));
      if (!parsed.success) reply = { v: 1, error: `bad request: ${parsed.error.issues[0]?.message}` };
      else reply = await handleQueueControl(parsed.data, deps);
    } catch (err) {
      deps.log.error({ err }, 'queue control request failed');
      reply = { v: 1, error: (err as Error).message };
    }
    return encoder.encode(JSON.stringify(reply));
  });
}

export async function handleQueueControl(
  request: QueueControlRequest,
  deps: QueueControlDeps,
): Promise<QueueControlReply> {
  const rows = await deps.index.all();
  if (request.op === 'list') {
    const postponed = sumPostponed((await deps.postponed?.()) ?? [], (deps.now ?? Date.now)());
    return list(rows, postponed, request.destination, deps);
  }
  return act(request, rows, deps);
}

function list(
  rows: QueueRow[],
  postponed: Map<string, PostponedCount>,
  destination: string | undefined,
  deps: QueueControlDeps,
): QueueControlReply {
  const counts = new Map<string, { deferred: number; held: number }>();
  for (const { value } of rows) {
    const c = counts.get(value.destination) ?? { deferred: 0, held: 0 };
    c[value.state]++;
    counts.set(value.destination, c);
  }
  const now = (deps.now ?? Date.now)();
  const backoffs = new Map(
    deps.states
      .all()
      .filter((s) => Date.parse(s.until) > now)
      .map((s) => [s.destination, s]),
  );
  for (const name of [...backoffs.keys(), ...postponed.keys()]) {
    if (!counts.has(name)) counts.set(name, { deferred: 0, held: 0 });
  }
  const waiting = (d: { deferred: number; held: number; postponed?: number }) =>
    d.deferred + d.held + (d.postponed ?? 0);
  const destinations = [...counts.entries()]
    .map(([name, c]) => ({
      destination: name,
      ...c,
      postponed: postponed.get(name)?.postponed,
      postponedUntil: postponed.get(name)?.until,
      backoffUntil: backoffs.get(name)?.until,
      backoffReason: backoffs.get(name)?.reason,
    }))
    .sort((a, b) => waiting(b) - waiting(a) || a.destination.localeCompare(b.destination));
  const matching = rows
    .map((r) => r.value)
    .filter((e) => destination === undefined || e.destination === destination.toLowerCase())
    .sort((a, b) => (a.nextAttemptAt ?? '').localeCompare(b.nextAttemptAt ?? ''));
  const parts: QueuedPart[] = matching.slice(0, QUEUE_LIST_MAX_PARTS).map((e) => ({
    partId: e.partId,
    queueId: e.queueId,
    destination: e.destination,
    state: e.command ? 'waking' : e.state,
    nextAttemptAt: e.state === 'held' ? undefined : e.nextAttemptAt,
    attempts: e.attempts,
    lastReply: e.lastReply,
    recipients: e.recipients,
    receivedAt: e.receivedAt,
  }));
  return { v: 1, destinations, parts, partsTotal: matching.length };
}

async function act(
  request: ActionRequest,
  rows: QueueRow[],
  deps: QueueControlDeps,
): Promise<QueueControlReply> {
  const wanted = request.destination?.toLowerCase();
  const targets = rows.filter((r) =>
    wanted !== undefined
      ? r.value.destination === wanted
      : r.value.partId === request.id || r.value.queueId === request.id,
  );
  if (request.destination && (request.op === 'retry' || request.op === 'release')) {
    await deps.states.clear(request.destination.toLowerCase());
  }
  if (targets.length === 0) {
    return {
      v: 1,
      done: [],
      failed: [
        { partId: request.id ?? request.destination!, reason: 'nothing waiting in the queue matches' },
      ],
    };
  }
  const done: string[] = [];
  const failed: Array<{ partId: string; reason: string }> = [];
  for (const row of targets) {
    try {
      const why = await actOn(request.op, row, deps);
      if (why) failed.push({ partId: row.value.partId, reason: why });
      else done.push(row.value.partId);
    } catch (err) {
      failed.push({ partId: row.value.partId, reason: (err as Error).message });
    }
  }
  deps.log.warn(
    { op: request.op, id: request.id, destination: request.destination, done, failed },
    'queue operation',
  );
  return { v: 1, done, failed };
}

/** Carry out one operation on one part; a reason when it could not be. */
async function actOn(
  op: ActionRequest['op'],
  row: QueueRow,
  deps: QueueControlDeps,
): Promise<string | undefined> {
  const e = row.value;
  const now = (deps.now ?? Date.now)();
  const due =
    e.state === 'deferred' &&
    e.nextAttemptAt !== undefined &&
    Date.parse(e.nextAttemptAt) <= now + DUE_MARGIN_MS;
  if (op === 'hold') {
    await deps.index.change(e.partId, row, (cur) => (cur ? { ...cur, state: 'held' } : null));
    return undefined;
  }
  if (op === 'retry' && e.state === 'held') return 'held: release it instead';
  const patch: Partial<QueueEntry> =
    op === 'release'
      ? { state: 'deferred', retryNow: true }
      : op === 'retry'
        ? { retryNow: true }
        : { command: op, state: 'deferred' };
  if (due) {
    if (op === 'retry') return 'its attempt is due now (running or about to run)';
    // Applied when the attempt in progress ends (queued-delivery.ts), or at the delivery about to come.
    await deps.index.change(e.partId, row, (cur) => (cur ? { ...cur, ...patch } : null));
    return undefined;
  }
  return wake(row, patch, deps);
}

/**
 * Put a copy of the part at the front of the deliver stream and remove the waiting one:
 * the operator's change first (so the copy finds it), then the copy, then the entry names
 * the copy (unless the copy's delivery adopted it already), then the old one is removed.
 */
async function wake(
  row: QueueRow,
  patch: Partial<QueueEntry>,
  deps: QueueControlDeps,
): Promise<string | undefined> {
  const e = row.value;
  const stored = await deps.bus.streamMessage(streams.deliver.name, e.streamSeq);
  if (!stored) return 'not found in the deliver stream (delivered meanwhile, or being attempted)';
  const { envelope, body } = decodeEnvelope(stored.data);
  const changed = await deps.index.change(e.partId, row, (cur) => (cur ? { ...cur, ...patch } : null));
  if (!changed) return 'left the queue meanwhile';
  const wakeNo = changed.wakes + 1;
  const copy = { ...envelope, queueWake: wakeNo };
  const { seq } = await deps.bus.publishEnvelope(subjects.deliver, copy, body, {
    msgId: dedupIds.queueWake(e.partId, wakeNo),
  });
  const nextAttemptAt = new Date((deps.now ?? Date.now)()).toISOString();
  await deps.index.change(e.partId, null, (cur) =>
    cur && cur.wakes < wakeNo ? { ...cur, wakes: wakeNo, streamSeq: seq, nextAttemptAt } : null,
  );
  if (seq !== e.streamSeq) await deps.bus.deleteStreamMessage(streams.deliver.name, e.streamSeq);
  return undefined;
}
