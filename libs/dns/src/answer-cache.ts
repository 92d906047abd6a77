/**
 * A bounded, TTL-honouring cache of DNS outcomes with in-flight sharing: the
 * part of a caching stub resolver that knows nothing about packets.
 *
 * - An entry lives for the seconds its producer says (the RRset's TTL, or
 *   the negative TTL of RFC 2308 §5), never longer than `maxTtlSeconds`; a
 *   TTL of 0 is not cached (RFC 1035 §3.2.1: "used only for the transaction
 *   in progress"), nor is an outcome the producer marks uncacheable.
 * - At most `maxEntries`: a hit moves its entry to the young end of the
 *   Map's insertion order, an insert past the bound drops the oldest one
 *   (least recently used), so memory stays bounded whatever names mail brings.
 * - Concurrent `get`s for a key whose lookup is in flight share that lookup
 *   (one query for a burst of identical questions).
 *
 * Time comes from `now()` (monotonic milliseconds by default) so an expiry
 * is not moved by wall-clock steps.
 */
import { performance } from 'node:perf_hooks';

export interface CacheableOutcome<T> {
  value: T;
  /** Seconds this outcome may be reused; 0 or undefined: not at all. */
  ttlSeconds?: number;
}

export interface AnswerCacheOptions {
  /** Upper bound on any entry's lifetime, seconds; 0 turns caching and sharing off. */
  maxTtlSeconds: number;
  /** Bound on the number of entries. */
  maxEntries: number;
  /** Monotonic milliseconds. */
  now?: () => number;
  /** Told where each answer came from (for a metric). */
  onLookup?: (answer: LookupSource) => void;
}

/** Where an answer came from: the cache, a query already in flight, or a new query. */
export type LookupSource = 'cache' | 'shared' | 'query';

export interface AnswerCache<T> {
  /** The cached outcome for `key`, or the one `produce` gives (shared with concurrent callers). */
  get(key: string, produce: () => Promise<CacheableOutcome<T>>): Promise<T>;
  readonly size: number;
}

export function createAnswerCache<T>(opts: AnswerCacheOptions): AnswerCache<T> {
  const now = opts.now ?? (() => performance.now());
  const entries = new Map<string, { value: T; expiresAt: number }>();
  const inFlight = new Map<string, Promise<T>>();
  const enabled = opts.maxTtlSeconds > 0 && opts.maxEntries > 0;
  const told = opts.onLookup ?? (() => {});

  const store = (key: string, outcome: CacheableOutcome<T>) => {
    const ttl = Math.min(outcome.ttlSeconds ?? 0, opts.maxTtlSeconds);
    if (!(ttl > 0)) return;
    entries.delete(key);
    if (entries.size >= opts.maxEntries) {
      // Map iterates in insertion order: the first key is the least recently used.
      const oldest = entries.keys().next();
      if (!oldest.done) entries.delete(oldest.value);
    }
    entries.set(key, { value: outcome.value, expiresAt: now() + ttl * 1000 });
  };

  return {
    get(key, produce) {
      if (!enabled) {
        told('query');
        return produce().then((o) => o.value);
      }
      const hit = entries.get(key);
      if (hit) {
        if (hit.expiresAt > now()) {
          entries.delete(key); // re-insert: now the most recently used
          entries.set(key, hit);
          told('cache');
          return Promise.resolve(hit.value);
        }
        entries.delete(key);
      }
      const pending = inFlight.get(key);
      if (pending) {
        told('shared');
        return pending;
      }
      told('query');
      const lookup = produce().then(
        (outcome) => {
          inFlight.delete(key);
          store(key, outcome);
          return outcome.value;
        },
        (err: unknown) => {
          inFlight.delete(key);
          throw err;
        },
      );
      inFlight.set(key, lookup);
      return lookup;
    },
    get size() {
      return entries.size;
    },
  };
}
