/**
 * The dedup index: which queue ids were given to one ingress dedup id (the
 * Nats-Msg-Id of the resolve publish), so a resend that JetStream drops as a
 * duplicate can name, in its own timeline, the queue id its first copy was
 * queued as.
 *
 * Each attempt notes `{ queueId }` on subjects.dedupIndex(key) BEFORE its
 * resolve publish (fire and forget: the same connection delivers it to the
 * server first). The first copy is then the last entry before the duplicate's
 * own: attempts refused earlier (451/452) come before the stored one, and
 * every attempt after it is a duplicate. A duplicate appends
 * `{ queueId, duplicateOf }` once it knows the answer, so a third resend
 * follows that link instead of naming the second. Entries live in
 * SLUICE_EVENTS (limits retention, direct gets) as long as timelines do.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { streams, subjects } from '@sluice/proto';

/** Entries read for one key at most (a loop guard: a real key has a handful). */
const MAX_ENTRIES = 1000;

interface IndexEntry {
  queueId: string;
  duplicateOf?: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The subject token of a dedup id (`mx:<hex>` -> `mx_<hex>`). */
export function dedupKeyOf(msgId: string): string {
  return msgId.replace(/[^A-Za-z0-9_-]/g, '_');
}

/** Note that `queueId` is about to be published under `msgId` (or was a duplicate of `duplicateOf`). */
export function noteDedupId(nc: NatsConnection, msgId: string, entry: IndexEntry): void {
  nc.publish(subjects.dedupIndex(dedupKeyOf(msgId)), encoder.encode(JSON.stringify(entry)));
}

/** The queue id the first copy under `msgId` was queued as, seen from the duplicate `queueId`. */
export async function firstQueueIdOf(
  jsm: JetStreamManager,
  msgId: string,
  queueId: string,
): Promise<string | undefined> {
  const subject = subjects.dedupIndex(dedupKeyOf(msgId));
  let seq = 0;
  let first: string | undefined;
  for (let i = 0; i < MAX_ENTRIES; i++) {
    const m = await jsm.direct.getMessage(streams.events.name, { seq: seq + 1, next_by_subj: subject });
    if (m === null) break;
    seq = m.seq;
    let e: IndexEntry;
    try {
      e = JSON.parse(decoder.decode(m.data)) as IndexEntry;
    } catch {
      continue;
    }
    if (e.queueId === queueId) {
      if (e.duplicateOf === undefined) break; // our own note: the first copy is the one before it
      continue;
    }
    first = e.duplicateOf ?? e.queueId;
  }
  return first;
}
