/**
 * Destinations that failed recently, shared by every egress replica through
 * a KV bucket (buckets.egressDestinations), so a dead or refusing destination
 * is not hammered by every message queued for it: after a 421 or a failure to
 * open any session, the destination is backed off, and every replica holds
 * its mail back until the backoff ends (the queue scheduler,
 * destination-scheduler.ts). Like Postfix's queue manager, which marks a
 * destination dead after a failed connection and defers its other mail
 * without trying.
 *
 * The backoff after the n-th failure in a row is the n-th delay of
 * egress.retrySchedule (the last repeating). When it ends, one attempt probes
 * the destination (the scheduler lets only one through); a destination that
 * answers again (any reply, even a 5xx) is cleared. Each replica keeps the
 * table in memory, fed by a KV watch: checking a destination costs nothing.
 */
import type { SharedTable } from '@sluice/bus';
import { destinationKey } from './queue-destination.ts';
import { retryDelayMs } from './retry-schedule.ts';

export interface DestinationState {
  destination: string;
  /** Failures in a row. */
  failures: number;
  /** Backed off until then (ISO 8601). */
  until: string;
  /** The reply that backed it off. */
  reason: string;
}

export class DestinationStates {
  readonly #table: SharedTable<DestinationState>;
  readonly #schedule: readonly number[];
  readonly #now: () => number;
  readonly #byKey = new Map<string, DestinationState>();
  #stopWatch: (() => void) | null = null;

  constructor(
    table: SharedTable<DestinationState>,
    schedule: readonly number[],
    now: () => number = Date.now,
  ) {
    this.#table = table;
    this.#schedule = schedule;
    this.#now = now;
  }

  /** Follow the shared table (every replica's writes). */
  async start(): Promise<void> {
    this.#stopWatch = await this.#table.watch((key, value) => {
      if (key.includes('.')) return; // pace leases and replica snapshots share the bucket (prefix.)
      if (value) this.#byKey.set(key, value);
      else this.#byKey.delete(key);
    });
  }

  stop(): void {
    this.#stopWatch?.();
    this.#stopWatch = null;
  }

  /** The destination's state, if it failed recently and has not answered since. */
  of(destination: string): DestinationState | undefined {
    return this.#byKey.get(destinationKey(destination));
  }

  /** Every destination with a state. */
  all(): DestinationState[] {
    return [...this.#byKey.values()];
  }

  /** The destination failed (421, no session): back it off for the next delay of the schedule. */
  async failed(destination: string, reason: string): Promise<DestinationState> {
    const key = destinationKey(destination);
    const failures = (this.#byKey.get(key)?.failures ?? 0) + 1;
    const until = new Date(this.#now() + retryDelayMs(this.#schedule, failures)).toISOString();
    const state: DestinationState = { destination, failures, until, reason };
    this.#byKey.set(key, state);
    await this.#table.put(key, state);
    return state;
  }

  /** The destination answered (or an operator asked to retry it now): no backoff. */
  async clear(destination: string): Promise<void> {
    const key = destinationKey(destination);
    if (!this.#byKey.has(key)) return;
    this.#byKey.delete(key);
    await this.#table.delete(key);
  }
}
