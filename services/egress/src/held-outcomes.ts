/**
 * What this egress process knows about outcomes it is still writing, or has
 * delivered: the in-process half of "a lost ledger write never leads to a
 * second delivery".
 *
 * - Attempts of one part run one after the other in a process: while a
 *   part is being delivered and its outcomes written to the ledger (held
 *   through a NATS outage, deliver.ts), a redelivery of the same part to
 *   this process (its ack deadline ran out while the server was away) waits
 *   for that attempt and then finds the recipients final in the ledger,
 *   instead of sending again.
 * - The final outcomes this process wrote are remembered (bounded): when the
 *   ledger has lost one (nats-server killed before its write reached the
 *   disk, which 2.9 acknowledges before it flushes), a redelivered part
 *   finds it here, is not sent again, and the entry is written again.
 */

import type { LedgerEntry } from '@sluice/bus';

/** Final outcomes remembered per process (oldest forgotten first), about 30 MB at most. */
export const REMEMBERED_OUTCOMES = 100_000;

export class HeldOutcomes {
  readonly #running = new Map<string, Promise<unknown>>();
  readonly #final = new Map<string, LedgerEntry>();

  /**
   * Run one attempt of a part after any attempt of the same part already
   * running here (including its held ledger write) has settled.
   */
  serialize<T>(partId: string, attempt: () => Promise<T>): Promise<T> {
    const before = this.#running.get(partId);
    const run = before ? before.then(attempt, attempt) : attempt();
    this.#running.set(partId, run);
    const forget = () => {
      if (this.#running.get(partId) === run) this.#running.delete(partId);
    };
    run.then(forget, forget);
    return run;
  }

  /** Remember a final outcome written (or being written) to the ledger by this process. */
  remember(key: string, entry: LedgerEntry): void {
    this.#final.delete(key);
    this.#final.set(key, entry);
    if (this.#final.size > REMEMBERED_OUTCOMES) {
      const oldest = this.#final.keys().next().value;
      if (oldest !== undefined) this.#final.delete(oldest);
    }
  }

  /** The final outcome this process recorded for the key, if it still remembers it. */
  recall(key: string): LedgerEntry | undefined {
    return this.#final.get(key);
  }
}
