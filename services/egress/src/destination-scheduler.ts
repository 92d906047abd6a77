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
 *   2. concurrency: at most maxConcurrency attempts in flight per process
 *      (egress.destinations, default egress.destinationConcurrency); the
 *      session pool below bounds sessions per host the same way. A part
 *      that finds the destination busy is postponed until about when a slot
 *      frees for it: the waiting parts are spread one per (average attempt
 *      time / maxConcurrency), so a backlog of thousands for one provider is
 *      not fetched and returned every second;
 *   3. rate: at most ratePerMinute attempts started per minute per process.
 *      A part over the rate is given the next free start time (a
 *      reservation) and postponed until then, so parts go out evenly spaced
 *      and each is postponed about once.
 *
 * Limits are per process: with R replicas a destination sees up to R times
 * the configured concurrency and rate (docs/egress-queue.md).
 */
import type { DestinationState, DestinationStates } from './destination-states.ts';
import type { DestinationLimits } from './queue-destination.ts';

/** An attempt's duration before any was measured (the busy postponement's unit). */
export const BUSY_DELAY_MS = 1000;
/** The longest postponement for a busy destination (the part looks again at least this often). */
const MAX_BUSY_DELAY_MS = 300_000;
/** Weight of the newest attempt in the running average of attempt times. */
const AVERAGE_WEIGHT = 0.2;
/** A reserved start may be taken this much early (nak delays are not exact). */
const RESERVATION_SLACK_MS = 50;
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
  /** The next start time nobody has reserved. */
  nextFree: number;
  /** Start times reserved by postponed parts, by part id. */
  reserved: Map<string, number>;
}

export interface SchedulerOptions {
  limits: (destination: string) => DestinationLimits;
  states: Pick<DestinationStates, 'of'>;
  now?: () => number;
  random?: () => number;
}

export class DestinationScheduler {
  readonly #opts: SchedulerOptions;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #inFlight = new Map<string, number>();
  readonly #pace = new Map<string, Pace>();
  /** Per destination: the running average attempt time, and the next start handed to a busy waiter. */
  readonly #busy = new Map<string, { averageMs: number; nextSlot: number }>();

  constructor(opts: SchedulerOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
  }

  /** Attempts in flight to a destination in this process. */
  inFlight(destination: string): number {
    return this.#inFlight.get(destination) ?? 0;
  }

  /**
   * May this part be attempted now? `ignoreBackoff`: an operator asked for
   * this part now (sluice queue retry/release).
   */
  admit(destination: string, partId: string, ignoreBackoff = false): Admission {
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
    const running = this.inFlight(destination);
    if (running >= max) {
      return {
        kind: 'wait',
        delayMs: this.#busyDelay(destination, now, max),
        reason: `destination ${destination} has ${running} attempt(s) in flight (limit ${max})`,
        cause: 'busy',
      };
    }
    if (limits.ratePerMinute !== undefined) {
      const wait = this.#paced(destination, partId, now, 60_000 / limits.ratePerMinute);
      if (wait > 0) {
        return {
          kind: 'wait',
          delayMs: wait,
          reason: `destination ${destination} is paced at ${limits.ratePerMinute} per minute`,
          cause: 'paced',
        };
      }
    }
    this.#inFlight.set(destination, running + 1);
    let released = false;
    return {
      kind: 'go',
      done: () => {
        if (released) return;
        released = true;
        this.#measured(destination, this.#now() - now);
        const n = (this.#inFlight.get(destination) ?? 1) - 1;
        if (n <= 0) this.#inFlight.delete(destination);
        else this.#inFlight.set(destination, n);
      },
    };
  }

  /** Until about when a slot frees for one more waiter of a busy destination. */
  #busyDelay(destination: string, now: number, max: number): number {
    const b = this.#busy.get(destination) ?? { averageMs: BUSY_DELAY_MS, nextSlot: now };
    this.#busy.set(destination, b);
    const interval = Math.max(50, b.averageMs / max);
    b.nextSlot = Math.max(b.nextSlot, now) + interval;
    const jitter = Math.floor(this.#random() * interval);
    return Math.min(MAX_BUSY_DELAY_MS, Math.round(b.nextSlot - now) + jitter);
  }

  #measured(destination: string, ms: number): void {
    const b = this.#busy.get(destination);
    if (b) b.averageMs = b.averageMs * (1 - AVERAGE_WEIGHT) + Math.max(1, ms) * AVERAGE_WEIGHT;
    else this.#busy.set(destination, { averageMs: Math.max(1, ms), nextSlot: this.#now() });
  }

  /** 0 when the part may start now (and takes its start), else how long it waits for its reserved start. */
  #paced(destination: string, partId: string, now: number, intervalMs: number): number {
    let pace = this.#pace.get(destination);
    if (!pace) {
      pace = { nextFree: now, reserved: new Map() };
      this.#pace.set(destination, pace);
    }
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
    if (now >= pace.nextFree) {
      pace.nextFree = now + intervalMs;
      return 0;
    }
    const at = pace.nextFree;
    pace.nextFree += intervalMs;
    pace.reserved.set(partId, at);
    return at - now;
  }
}
