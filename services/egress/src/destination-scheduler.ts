/**
 * Which part may be attempted now, per destination (queue-destination.ts),
 * so that a slow or dead destination never blocks the others: a part that
 * may not go now is postponed (returned to the deliver stream with a delay,
 * not counted as an attempt) instead of holding one of the egress' delivery
 * slots while it waits. Checked in this order:
 *
 *   1. backoff: the destination failed recently (destination-states.ts):
 *      wait until the backoff ends; when it has ended but the destination
 *      has not answered since, only one attempt at a time probes it;
 *   2. concurrency: at most maxConcurrency attempts in flight (a rule's in
 *      egress.destinations across replicas, this replica using its share;
 *      the default egress.destinationConcurrency per process); the
 *      session pool below bounds sessions per host the same way. A part
 *      that finds a destination busy that is demonstrably moving (an attempt
 *      ended within the last slotWaitMs, and the expected wait is shorter)
 *      waits in this process for the next slot, handed over by the attempt
 *      that ends (at most maxConcurrency such waiters): a fast provider's
 *      backlog goes out at the speed of its slots, not of nak round trips.
 *      Otherwise (a slow or dead destination, or too many waiters) it is
 *      postponed until about when a slot frees for it: the waiting parts
 *      are spread one per (average attempt time / maxConcurrency), so a
 *      backlog of thousands for one provider is not fetched and returned
 *      every second;
 *   3. rate: at most ratePerMinute attempts started per minute, across all
 *      replicas: start times come in slices from a pace source (pace-leases.ts:
 *      shared through KV, one compare-and-set per slice; decision 0042). A
 *      part over the rate is given the next start time this replica holds (a
 *      reservation) and postponed until then, so parts go out evenly spaced
 *      and each is postponed about once. A start time not used by its time is
 *      dropped, never used late.
 *
 * Concurrency: a maxConcurrency given by an egress.destinations rule holds
 * across replicas (each uses its share, concurrency-shares.ts); the default
 * egress.destinationConcurrency is per process (docs/egress-queue.md,
 * decision 0042).
 */

import type { ConcurrencyShares } from './concurrency-shares.ts';
import type { DestinationState, DestinationStates } from './destination-states.ts';
import { LEASE_AHEAD_MS, localPaceSource, type PaceSource } from './pace-leases.ts';
import type { DestinationLimits } from './queue-destination.ts';

/** An attempt's duration before any was measured (the busy postponement's unit). */
export const BUSY_DELAY_MS = 1000;
/** The shortest spread between postponed waiters of a busy destination. */
const MIN_BUSY_INTERVAL_MS = 10;
/** How long a part may wait in process for a slot of a busy but moving destination (default). */
export const SLOT_WAIT_MS = 1000;
/** The longest postponement for a busy destination (the part looks again at least this often). */
const MAX_BUSY_DELAY_MS = 300_000;
/** Weight of the newest attempt in the running average of attempt times. */
const AVERAGE_WEIGHT = 0.2;
/** A reserved start may be taken this much early (nak delays are not exact). */
const RESERVATION_SLACK_MS = 50;
/**
 * The longest postponement of a part whose paced destination has its near future leased: its
 * estimated turn, capped (a part looks again at least this often). Long, so that a backlog of
 * hours for one provider is not returned every few minutes (each return is a delivery that
 * another replica counts toward bus.maxDeliver: decision 0042).
 */
const MAX_PACED_DELAY_MS = 3600_000;
/** A start time this late is still taken (a lease's KV round trip); later ones are dropped. */
const LATE_START_MS = 250;
/** Reservations not taken this long after their time are forgotten (the part went to another replica). */
const RESERVATION_TTL_MS = 60_000;

export type Admission =
  | { kind: 'go'; done(): void }
  | {
      kind: 'wait';
      delayMs: number;
      reason: string;
      /** Why, as a metric label. */
      cause: 'backoff' | 'busy' | 'paced';
      backoff?: DestinationState;
    };

interface Pace {
  /** Start times this replica leased and nobody has reserved yet, ascending. */
  slots: number[];
  /** Start times reserved by postponed parts, by part id. */
  reserved: Map<string, number>;
  /** A lease being taken (parts arriving meanwhile wait for it rather than take another). */
  leasing?: Promise<void>;
  /** Nothing to lease before this (others hold the near future), and the return time last handed out. */
  blockedUntil: number;
  nextReturn: number;
}

export interface SchedulerOptions {
  limits: (destination: string) => DestinationLimits;
  states: Pick<DestinationStates, 'of'>;
  /** Where paced start times come from (default: this process alone, localPaceSource). */
  pace?: PaceSource;
  /** Shares of a rule's maxConcurrency across replicas (default: per process). */
  shares?: Pick<ConcurrencyShares, 'held' | 'grow'>;
  now?: () => number;
  random?: () => number;
  /** How long a part may wait in process for a slot of a busy, moving destination (default SLOT_WAIT_MS). */
  slotWaitMs?: number;
}

export class DestinationScheduler {
  readonly #opts: SchedulerOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #paceSource: PaceSource;
  readonly #inFlight = new Map<string, number>();
  readonly #pace = new Map<string, Pace>();
  /** Per destination: the running average attempt time, and the next start handed to a busy waiter. */
  readonly #busy = new Map<string, { averageMs: number; nextSlot: number }>();
  /** Per destination: parts waiting in process for a slot, first come first served. */
  readonly #slotWaiters = new Map<string, Array<() => void>>();
  /** Per destination: when an attempt last ended (a moving destination). */
  readonly #lastDone = new Map<string, number>();
  /** Per destination: when its attempts in flight went from none to one (a fresh destination). */
  readonly #activeSince = new Map<string, number>();
  readonly #slotWaitMs: number;

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#paceSource = opts.pace ?? localPaceSource(this.#now);
    this.#slotWaitMs = opts.slotWaitMs ?? SLOT_WAIT_MS;
  }

  /** Attempts in flight to a destination in this process. */
  inFlight(destination: string): number {
    return this.#inFlight.get(destination) ?? 0;
  }

  /**
   * May this part be attempted now? `ignoreBackoff`: an operator asked for
   * this part now (sluice queue retry/release).
   */
  async admit(destination: string, partId: string, ignoreBackoff = false): Promise<Admission> {
    const now = this.#now();
    const limits = this.#opts.limits(destination);
    const state = ignoreBackoff ? undefined : this.#opts.states.of(destination);
    let max = limits.maxConcurrency;
    if (state) {
      const until = Date.parse(state.until);
      if (now < until) {
        return {
          kind: 'wait',
          // Spread the waiting parts' return over a second, so they do not all arrive at once.
          delayMs: until - now + Math.floor(this.#random() * 1000),
          reason: `destination ${destination} is backed off: ${state.reason}`,
          cause: 'backoff',
          backoff: state,
        };
      }
      max = 1; // the backoff is over: one attempt probes the destination
    }
    const shares = this.#opts.shares;
    if (shares && limits.sharedConcurrency && !state) {
      // The rule's maximum holds across replicas: this replica uses its share (decision 0042).
      if (this.inFlight(destination) >= shares.held(destination)) await shares.grow(destination, max);
      max = Math.min(max, shares.held(destination));
    }
    const running = this.inFlight(destination);
    if (running >= max) {
      // A finishing attempt hands its slot over (in flight unchanged), or the wait is refused or times out.
      const handedOver = await this.#waitForSlot(destination, max, now);
      if (!handedOver) {
        return {
          kind: 'wait',
          delayMs: this.#busyDelay(destination, now, max),
          reason: `destination ${destination} has ${running} attempt(s) in flight (limit ${max})`,
          cause: 'busy',
        };
      }
      const after = ignoreBackoff ? undefined : this.#opts.states.of(destination);
      if (after && this.#now() < Date.parse(after.until)) {
        // Backed off while we waited (the attempt that ended was refused): give the slot back.
        this.#release(destination);
        return {
          kind: 'wait',
          delayMs: Date.parse(after.until) - this.#now() + Math.floor(this.#random() * 1000),
          reason: `destination ${destination} is backed off: ${after.reason}`,
          cause: 'backoff',
          backoff: after,
        };
      }
    } else {
      // The slot is taken before a lease is awaited, so parts arriving meanwhile see it busy.
      this.#inFlight.set(destination, running + 1);
      if (running === 0) this.#activeSince.set(destination, now);
    }
    if (limits.ratePerMinute !== undefined) {
      let wait: number;
      try {
        wait = await this.#paced(destination, partId, 60_000 / limits.ratePerMinute);
      } catch (err) {
        this.#release(destination);
        throw err;
      }
      if (wait > 0) {
        this.#release(destination);
        return {
          kind: 'wait',
          delayMs: wait,
          reason: `destination ${destination} is paced at ${limits.ratePerMinute} per minute`,
          cause: 'paced',
        };
      }
    }
    let released = false;
    const startedAt = this.#now(); // after any wait for a slot: the average is of attempts alone
    return {
      kind: 'go',
      done: () => {
        if (released) return;
        released = true;
        this.#measured(destination, this.#now() - startedAt);
        this.#release(destination);
      },
    };
  }

  #release(destination: string): void {
    const next = this.#slotWaiters.get(destination)?.shift();
    if (next) {
      next(); // the slot passes to the first waiter: in flight unchanged
      return;
    }
    const n = (this.#inFlight.get(destination) ?? 1) - 1;
    if (n <= 0) {
      this.#inFlight.delete(destination);
      this.#activeSince.delete(destination);
    } else this.#inFlight.set(destination, n);
  }

  /**
   * Wait in process for a slot of a busy destination, when it is moving (an attempt
   * ended within slotWaitMs) or fresh (its first attempt in flight started within
   * slotWaitMs: a backlog arriving at once must not be spread over seconds before any
   * attempt could end), fewer than `max` parts wait already, and the expected wait
   * (average attempt time x waiters ahead / max) is within slotWaitMs. True when a
   * finishing attempt handed its slot over; false at once or after slotWaitMs. A
   * black-holed destination is neither after slotWaitMs: its parts are postponed.
   */
  #waitForSlot(destination: string, max: number, now: number): Promise<boolean> {
    const lastDone = this.#lastDone.get(destination);
    const activeSince = this.#activeSince.get(destination);
    const moving = lastDone !== undefined && now - lastDone <= this.#slotWaitMs;
    const fresh = activeSince !== undefined && now - activeSince <= this.#slotWaitMs;
    if (!moving && !fresh) return Promise.resolve(false);
    const waiters = this.#slotWaiters.get(destination) ?? [];
    const average = this.#busy.get(destination)?.averageMs ?? BUSY_DELAY_MS;
    const expected = (average * (waiters.length + 1)) / Math.max(1, max);
    if (waiters.length >= max || expected > this.#slotWaitMs) return Promise.resolve(false);
    this.#slotWaiters.set(destination, waiters);
    return new Promise<boolean>((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        const i = waiters.indexOf(wake);
        if (i >= 0) waiters.splice(i, 1);
        if (waiters.length === 0 && this.#slotWaiters.get(destination) === waiters)
          this.#slotWaiters.delete(destination);
        resolve(false);
      }, this.#slotWaitMs);
      waiters.push(wake);
    });
  }

  /** Until about when a slot frees for one more waiter of a busy destination. */
  #busyDelay(destination: string, now: number, max: number): number {
    const b = this.#busy.get(destination) ?? { averageMs: BUSY_DELAY_MS, nextSlot: now };
    this.#busy.set(destination, b);
    const interval = Math.max(MIN_BUSY_INTERVAL_MS, b.averageMs / Math.max(1, max));
    b.nextSlot = Math.max(b.nextSlot, now) + interval;
    const jitter = Math.floor(this.#random() * interval);
    return Math.min(MAX_BUSY_DELAY_MS, Math.round(b.nextSlot - now) + jitter);
  }

  #measured(destination: string, ms: number): void {
    this.#lastDone.set(destination, this.#now());
    const b = this.#busy.get(destination);
    if (b) b.averageMs = b.averageMs * (1 - AVERAGE_WEIGHT) + Math.max(1, ms) * AVERAGE_WEIGHT;
    else this.#busy.set(destination, { averageMs: Math.max(1, ms), nextSlot: this.#now() });
  }

  /** 0 when the part may start now (and takes its start), else how long it waits for its reserved start. */
  async #paced(destination: string, partId: string, intervalMs: number): Promise<number> {
    let pace = this.#pace.get(destination);
    if (!pace) {
      pace = { slots: [], reserved: new Map(), blockedUntil: 0, nextReturn: 0 };
      this.#pace.set(destination, pace);
    }
    for (;;) {
      const now = this.#now();
      for (const [id, at] of pace.reserved) {
        if (at + RESERVATION_TTL_MS < now) pace.reserved.delete(id);
      }
      const mine = pace.reserved.get(partId);
      if (mine !== undefined) {
        if (now + RESERVATION_SLACK_MS >= mine) {
          pace.reserved.delete(partId);
          return 0;
        }
        return mine - now;
      }
      // A start time gone by unused is dropped: used late it would exceed the rate.
      while (pace.slots.length > 0 && pace.slots[0]! + LATE_START_MS < now) pace.slots.shift();
      const at = pace.slots.shift();
      if (at !== undefined) {
        if (now + RESERVATION_SLACK_MS >= at) return 0;
        pace.reserved.set(partId, at);
        return at - now;
      }
      if (now < pace.blockedUntil) {
        // Every near start is leased: come back about when one may be free, waiters spread one interval apart.
        pace.nextReturn = Math.max(pace.nextReturn, pace.blockedUntil) + intervalMs;
        return Math.min(MAX_PACED_DELAY_MS, pace.nextReturn - now + Math.floor(this.#random() * intervalMs));
      }
      if (!pace.leasing) {
        const p = pace;
        p.leasing = this.#paceSource
          .lease(destination, intervalMs)
          .then((lease) => {
            if (lease.count === 0) p.blockedUntil = lease.start - LEASE_AHEAD_MS;
            for (let i = 0; i < lease.count; i++) p.slots.push(lease.start + i * intervalMs);
          })
          .finally(() => {
            p.leasing = undefined;
          });
      }
      await pace.leasing;
    }
  }
}
