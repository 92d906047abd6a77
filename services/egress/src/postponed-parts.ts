/**
 * Parts postponed because their destination is busy or paced (destination-scheduler.ts)
 * are not in the queue index: writing an entry for each would add a KV write to most
 * first attempts towards a busy provider. So each replica counts them in memory, per
 * destination, and publishes its counts as one snapshot record in the destinations
 * bucket (key `postponed.<replica>`) when they change, at most every SNAPSHOT_EVERY_MS,
 * and refreshed every REFRESH_MS while not empty; `sluice queue list` adds up the
 * fresh snapshots of every replica (queue-control.ts; decision 0042).
 *
 * A part is counted from its postponement until it comes back to this replica, or
 * until a grace period after its return time (it came back to another replica). A
 * snapshot not refreshed for STALE_MS is ignored (its replica died); a replica that
 * stops deletes its own.
 */
import type { SharedTable } from '@sluice/bus';
import { destinationKey } from './queue-destination.ts';

export const SNAPSHOT_EVERY_MS = 2000;
const REFRESH_MS = 15_000;
export const STALE_MS = 45_000;
/** A part not back this long after its return time went to another replica (or was delivered there). */
const GRACE_MS = 5000;

export const POSTPONED_KEY_PREFIX = 'postponed.';

export interface PostponedCount {
  postponed: number;
  /** The latest return time of a counted part (ISO 8601). */
  until: string;
}

export interface PostponedSnapshot {
  instance: string;
  /** When written (ISO 8601). */
  at: string;
  destinations: Record<string, PostponedCount>;
}

export class PostponedParts {
  readonly #parts = new Map<string, { destination: string; until: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /** The part was postponed (busy or paced) until `until` (epoch ms). */
  note(partId: string, destination: string, until: number): void {
    this.#parts.delete(partId); // re-inserted at the end: the map stays in return order, roughly
    this.#parts.set(partId, { destination, until });
  }

  /** The part is back (at this replica): no longer counted. */
  forget(partId: string): void {
    this.#parts.delete(partId);
  }

  counts(): Record<string, PostponedCount> {
    const now = this.#now();
    const out: Record<string, { postponed: number; until: number }> = {};
    for (const [id, p] of this.#parts) {
      if (p.until + GRACE_MS < now) {
        this.#parts.delete(id);
        continue;
      }
      const c = out[p.destination] ?? { postponed: 0, until: 0 };
      out[p.destination] = c;
      c.postponed++;
      c.until = Math.max(c.until, p.until);
    }
    return Object.fromEntries(
      Object.entries(out).map(([d, c]) => [
        d,
        { postponed: c.postponed, until: new Date(c.until).toISOString() },
      ]),
    );
  }
}

/** Publish this replica's counts while it runs; the returned function stops and deletes the snapshot. */
export function publishPostponed(
  parts: PostponedParts,
  table: SharedTable<PostponedSnapshot>,
  instance: string,
  onError: (err: unknown) => void,
  now: () => number = Date.now,
): () => Promise<void> {
  const key = `${POSTPONED_KEY_PREFIX}${destinationKey(instance)}`;
  let last = '{}';
  let lastAt = 0;
  let writing: Promise<void> = Promise.resolve();
  const tick = () => {
    const counts = parts.counts();
    const text = JSON.stringify(counts);
    const empty = text === '{}';
    if (text === last && (empty || now() - lastAt < REFRESH_MS)) return;
    last = text;
    lastAt = now();
    writing = (
      empty
        ? table.delete(key)
        : table
            .put(key, { instance, at: new Date(lastAt).toISOString(), destinations: counts })
            .then(() => {})
    ).catch((err) => {
      last = ''; // try again at the next tick
      onError(err);
    });
  };
  const timer = setInterval(tick, SNAPSHOT_EVERY_MS);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await writing;
    if (last !== '{}') await table.delete(key).catch(onError);
  };
}

/** Every replica's fresh counts added up, per destination. */
export function sumPostponed(snapshots: PostponedSnapshot[], now: number): Map<string, PostponedCount> {
  const out = new Map<string, PostponedCount>();
  for (const s of snapshots) {
    if (Date.parse(s.at) + STALE_MS < now) continue;
    for (const [d, c] of Object.entries(s.destinations)) {
      const cur = out.get(d);
      out.set(
        d,
        cur ? { postponed: cur.postponed + c.postponed, until: [cur.until, c.until].sort()[1]! } : { ...c },
      );
    }
  }
  return out;
}
