/**
 * Per-user (and per relay client) sending limits, shared by every replica:
 * counters in JetStream KV (buckets.submissionRates), one per subject, window
 * and window number (fixed windows: the current minute, hour and UTC day).
 * What counts is recipients: a message to 10 people counts 10, so a
 * compromised account cannot turn one DATA into a spam cannon.
 *
 * take() first reads every window; if one would go over, nothing is counted
 * and the caller answers 450 4.7.1 naming the window (RFC 3463 X.7.1, a
 * temporary refusal: the client's queue retries, the user is not bounced).
 * Otherwise each window is incremented by compare-and-set (create, or update
 * at the revision read; a lost race reads again). Two replicas racing at the
 * edge can let a few recipients past a limit, never a multiple of it.
 */
import { createHash } from 'node:crypto';

export interface RateLimits {
  perMinute: number;
  perHour: number;
  perDay: number;
}

/** The compare-and-set counter store (the bus' rateCounter* methods). */
export interface CounterStore {
  rateCounterGet(key: string): Promise<{ value: string; revision: number } | null>;
  rateCounterCreate(key: string, value: string): Promise<boolean>;
  rateCounterUpdate(key: string, value: string, revision: number): Promise<boolean>;
}

export type RateWindow = 'minute' | 'hour' | 'day';
export type RateDecision = { ok: true } | { ok: false; window: RateWindow; limit: number };

const WINDOWS: Array<{ name: RateWindow; ms: number; limit: (l: RateLimits) => number }> = [
  { name: 'minute', ms: 60_000, limit: (l) => l.perMinute },
  { name: 'hour', ms: 3_600_000, limit: (l) => l.perHour },
  { name: 'day', ms: 86_400_000, limit: (l) => l.perDay },
];
const MAX_RACES = 8;

/** A KV-safe key: the subject (a login name may hold any character) is hashed. */
export function counterKey(rateClass: string, subject: string, window: RateWindow, index: number): string {
  const who = createHash('sha256').update(subject).digest('hex').slice(0, 32);
  return `${rateClass}.${who}.${window}.${index}`;
}

export class RateLimiter {
  readonly #store: CounterStore;
  readonly #now: () => number;

  constructor(store: CounterStore, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** Count `n` recipients for `subject` in `rateClass`, unless a window would go over its limit. */
  async take(rateClass: string, subject: string, limits: RateLimits, n = 1): Promise<RateDecision> {
    const now = this.#now();
    const active = WINDOWS.filter((w) => w.limit(limits) > 0).map((w) => ({
      ...w,
      key: counterKey(rateClass, subject, w.name, Math.floor(now / w.ms)),
    }));
    const seen = await Promise.all(active.map((w) => this.#store.rateCounterGet(w.key)));
    for (const [i, w] of active.entries()) {
      const count = Number(seen[i]?.value ?? 0);
      if (count + n > w.limit(limits)) return { ok: false, window: w.name, limit: w.limit(limits) };
    }
    await Promise.all(active.map((w, i) => this.#add(w.key, n, seen[i] ?? null)));
    return { ok: true };
  }

  async #add(key: string, n: number, first: { value: string; revision: number } | null): Promise<void> {
    let current = first;
    for (let race = 0; race < MAX_RACES; race++) {
      const done = current
        ? await this.#store.rateCounterUpdate(key, String(Number(current.value) + n), current.revision)
        : await this.#store.rateCounterCreate(key, String(n));
      if (done) return;
      current = await this.#store.rateCounterGet(key);
    }
    throw new Error(`rate counter ${key}: lost ${MAX_RACES} compare-and-set races`);
  }
}
