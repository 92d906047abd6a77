/**
 * Where a paced destination's start times come from (egress.destinations[].ratePerMinute,
 * docs/decisions/0042): a replica takes a *slice* of consecutive start times, one
 * interval (60 s / rate) apart, and hands them to its parts one by one
 * (destination-scheduler.ts). Two sources:
 *
 *   - localPaceSource: this process' own clock line per destination, one start
 *     per lease (a single replica, and unit tests);
 *   - SharedPaceLeases: one record per destination in the destinations KV
 *     bucket, `{ nextFree }`: the first start time no replica has taken. A lease
 *     is one compare-and-set moving nextFree from max(nextFree, now) by
 *     slice × interval (GCRA, the generic cell rate algorithm, over KV). Slices of
 *     different replicas never overlap, so the starts of all replicas together
 *     stay within the rate; a slice covers about SLICE_SECONDS of the rate, so a
 *     replica writes the KV once per slice, not once per attempt.
 *
 * A lease "expires" by itself: its start times are instants, and one not used
 * by its time is dropped (the scheduler never starts late on an old slot), so a
 * replica that dies gives back its share after at most one slice: the next
 * lease by any replica starts at max(nextFree, now). Replicas' clocks must
 * agree to well under one interval (NTP), as the backoffs' already do.
 */
import type { SharedTable } from '@sluice/bus';
import { destinationKey } from './queue-destination.ts';

/** A slice covers about this many seconds of a destination's rate. */
export const SLICE_SECONDS = 2;
/** The most start times one lease takes (a very high rate still writes the KV a few times a second). */
const MAX_SLICE = 50;
const LEASE_TRIES = 10;

/**
 * Start times leased: `count` of them from `start`, one interval apart; count 0 when the
 * next free start is more than LEASE_AHEAD_MS away (others hold the near future):
 * ask again at `start` - LEASE_AHEAD_MS.
 */
export interface PaceLease {
  /** The first start time (epoch ms); the others follow one interval apart. */
  start: number;
  count: number;
}

/**
 * Nobody leases further ahead than this: a replica that dies holds at most this much plus
 * one slice of the destination's future starts, which are lost with it.
 */
export const LEASE_AHEAD_MS = SLICE_SECONDS * 1000;

export interface PaceSource {
  /** Take the next start times of a destination paced at one start per intervalMs. */
  lease(destination: string, intervalMs: number): Promise<PaceLease>;
}

/** The record of a paced destination in the destinations bucket. */
export interface PaceRecord {
  destination: string;
  /** The first start time no replica has leased (epoch ms). */
  nextFree: number;
}

/** Key prefix of pace records in the destinations bucket (destination states have none). */
export const PACE_KEY_PREFIX = 'pace.';

export function paceKey(destination: string): string {
  return `${PACE_KEY_PREFIX}${destinationKey(destination)}`;
}

/** Start times per lease for a destination paced at one per intervalMs. */
export function sliceSize(intervalMs: number): number {
  return Math.max(1, Math.min(MAX_SLICE, Math.floor((SLICE_SECONDS * 1000) / intervalMs)));
}

/** One process' own pacing: one start at a time, no sharing. */
export function localPaceSource(now: () => number = Date.now): PaceSource {
  const nextFree = new Map<string, number>();
  return {
    async lease(destination, intervalMs) {
      const start = Math.max(nextFree.get(destination) ?? 0, now());
      if (start - now() > LEASE_AHEAD_MS) return { start, count: 0 };
      nextFree.set(destination, start + intervalMs);
      return { start, count: 1 };
    },
  };
}

/** Pacing shared by every replica through compare-and-set on one KV record per destination. */
export class SharedPaceLeases implements PaceSource {
  readonly #table: SharedTable<PaceRecord>;
  readonly #now: () => number;
  /** The last record this replica wrote (or read), to try the compare-and-set without a read first. */
  readonly #last = new Map<string, { revision: number; nextFree: number }>();
  /** Leases taken (KV writes made), for the tests and the decision's figures. */
  leases = 0;

  constructor(table: SharedTable<PaceRecord>, now: () => number = Date.now) {
    this.#table = table;
    this.#now = now;
  }

  async lease(destination: string, intervalMs: number): Promise<PaceLease> {
    const key = paceKey(destination);
    const count = sliceSize(intervalMs);
    let seen = this.#last.get(key);
    for (let i = 0; i < LEASE_TRIES; i++) {
      if (!seen) {
        const row = await this.#table.get(key);
        seen = row ? { revision: row.revision, nextFree: row.value.nextFree } : { revision: 0, nextFree: 0 };
      }
      const start = Math.max(seen.nextFree, this.#now());
      if (start - this.#now() > LEASE_AHEAD_MS) return { start, count: 0 }; // nextFree only grows: no write
      const nextFree = start + count * intervalMs;
      const revision = await this.#table.update(key, { destination, nextFree }, seen.revision);
      if (revision !== null) {
        this.#last.set(key, { revision, nextFree });
        this.leases++;
        return { start, count };
      }
      seen = undefined; // another replica leased meanwhile: read its record and try again
    }
    throw new Error(`pace record of ${destination} kept changing under ${LEASE_TRIES} leases`);
  }
}
