/**
 * The delivery queue's index: one entry per part that is waiting (deferred
 * after an attempt, held back with its backed-off destination, or held by an
 * operator), in a KV bucket every replica shares (buckets.egressQueue,
 * keyed by part id). The part itself stays in the deliver stream, where
 * JetStream redelivers it at its next-attempt time; the entry says where the
 * part waits (its stream sequence), for what (destination, next attempt,
 * attempts, last reply), and what an operator asked of it (held, a command,
 * retry now).
 *
 * Written only off the fast path: a part delivered at its first attempt never
 * has an entry. Operators and attempts may write the same entry at once, so
 * every write is compare-and-set on the revision read, re-applied on a
 * conflict (`change`): an attempt's result never overwrites a hold or a
 * command given meanwhile.
 */
import type { SharedTable, TableRow } from '@sluice/bus';

export interface QueueEntry {
  partId: string;
  queueId: string;
  destination: string;
  /** deferred: waits for its next attempt; held: no attempt until released. */
  state: 'deferred' | 'held';
  nextAttemptAt?: string;
  /** Attempts made so far (postponements do not count). */
  attempts: number;
  lastReply?: string;
  recipients: number;
  receivedAt: string;
  /** Where the part waits in the deliver stream. */
  streamSeq: number;
  /** Times an operator put the part back at the front of the stream (envelope.queueWake). */
  wakes: number;
  /** What to do with the part at its next delivery instead of an attempt. */
  command?: 'bounce' | 'delete';
  /** An operator asked for an attempt now: the destination's backoff does not hold it back. */
  retryNow?: boolean;
}

export type QueueRow = TableRow<QueueEntry>;

const CHANGE_TRIES = 10;

export class QueueIndex {
  readonly #table: SharedTable<QueueEntry>;

  constructor(table: SharedTable<QueueEntry>) {
    this.#table = table;
  }

  read(partId: string): Promise<QueueRow | null> {
    return this.#table.get(partId);
  }

  all(): Promise<QueueRow[]> {
    return this.#table.entries();
  }

  /**
   * Write the entry computed by `next` from the current one (undefined: none), compare-and-set
   * against `seen` (the row read earlier; null: none was there) and re-read on a conflict.
   * `next` returning null deletes nothing and writes nothing. Resolves the entry written.
   */
  async change(
    partId: string,
    seen: QueueRow | null,
    next: (current: QueueEntry | undefined) => QueueEntry | null,
  ): Promise<QueueEntry | null> {
    let row = seen;
    for (let i = 0; i < CHANGE_TRIES; i++) {
      const value = next(row?.value);
      if (!value) return null;
      const revision = await this.#table.update(partId, value, row?.revision ?? 0);
      if (revision !== null) return value;
      row = await this.#table.get(partId);
    }
    throw new Error(`queue entry ${partId} kept changing under ${CHANGE_TRIES} writes`);
  }

  /** The part left the queue (delivered, failed, expired, deleted). */
  async remove(partId: string): Promise<void> {
    await this.#table.delete(partId);
  }
}
