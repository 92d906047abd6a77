/**
 * A rate limit on bounces to our SRS addresses, per original-sender domain
 * (the domain the bounce goes back to after reversal): at most `perDomain`
 * accepted in a window of `windowSeconds`; over it the RCPT-time lookup
 * answers tempfail, which the ingress turns into 451 4.3.0 (the bouncing MTA
 * retries later, RFC 5321 §4.2.5: nothing is lost). It caps the backscatter
 * we relay to one domain when a forward's destination bounces a flood (a
 * spam run through a forward, a full mailbox receiving a list).
 *
 * In memory, per resolver replica (fixed windows, a Map of counters pruned as
 * windows pass): with R replicas the effective limit is up to R x perDomain,
 * which is enough for a cap against floods and costs no JetStream round trip
 * on the RCPT path; a shared KV counter would make it exact at that cost.
 * Only real bounces count (null sender at RCPT); `sluice lookup` does not.
 */

export interface SrsBounceLimitConfig {
  /** Bounces per original-sender domain per window; 0: no limit. */
  perDomain: number;
  windowSeconds: number;
}

export class SrsBounceLimiter {
  readonly #counts = new Map<string, { window: number; count: number }>();
  readonly #config: SrsBounceLimitConfig;

  constructor(config: SrsBounceLimitConfig) {
    this.#config = config;
  }

  /** Count one bounce to `domain` at `nowMs`; false when it is over the limit (not counted then). */
  take(domain: string, nowMs: number): boolean {
    const { perDomain, windowSeconds } = this.#config;
    if (perDomain <= 0) return true;
    const window = Math.floor(nowMs / (windowSeconds * 1000));
    const key = domain.toLowerCase();
    const entry = this.#counts.get(key);
    if (!entry || entry.window !== window) {
      if (this.#counts.size > 10_000) this.#prune(window);
      this.#counts.set(key, { window, count: 1 });
      return true;
    }
    if (entry.count >= perDomain) return false;
    entry.count++;
    return true;
  }

  /** Domains counted in the current window (for tests and the log). */
  get size(): number {
    return this.#counts.size;
  }

  #prune(window: number) {
    for (const [k, v] of this.#counts) if (v.window !== window) this.#counts.delete(k);
  }
}
