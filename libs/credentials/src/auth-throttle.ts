/**
 * Brute-force protection shared by every submission replica, in
 * buckets.authThrottle: one record per client network (client-network.ts)
 * and one per user, each counting failures in a fixed window. Reaching the
 * limit bans the key: the first ban lasts banSeconds, each further ban of
 * the same key twice as long as the one before, up to maxBanSeconds (the
 * record, with its ban count, is forgotten a day after its last write:
 * authThrottleTtlMs). Every write is compare-and-set on the KV revision, so
 * two replicas counting the same key at once both count (the loser re-reads
 * and tries again). A success clears the user's failure count (not its ban
 * history), and never the client's: one account's good password must not
 * buy its client more guesses at other accounts.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { ThrottleOptions } from './types.ts';

interface ThrottleRecord {
  /** Failures in the current window. */
  n: number;
  /** Start of the current window, ms epoch. */
  since: number;
  /** Bans imposed so far (the next one lasts banSeconds * 2^bans). */
  bans: number;
  /** Banned until, ms epoch (0: not banned). */
  until: number;
}

export type ThrottleScope = 'ip' | 'user';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CAS_ATTEMPTS = 20;

/**
 * The record key of a client network or user: "<scope>.<first 32 hex digits of
 * sha256(lower-case name)>". Hashed because the name is whatever the client
 * typed — often enough a password in the user field — and must not sit in
 * the bucket readable. An operator finds a key with
 * `printf %s jdoe | sha256sum | cut -c1-32`.
 */
export function throttleKey(scope: ThrottleScope, name: string): string {
  return `${scope}.${createHash('sha256').update(name.toLowerCase(), 'utf8').digest('hex').slice(0, 32)}`;
}

function isConflict(err: unknown): boolean {
  return /wrong last sequence|10071|key exists/i.test((err as Error)?.message ?? '');
}

function decode(value: Uint8Array): ThrottleRecord | null {
  try {
    const r = JSON.parse(decoder.decode(value)) as ThrottleRecord;
    return typeof r.n === 'number' ? r : null;
  } catch {
    return null;
  }
}

export class AuthThrottle {
  readonly #kv: KV;
  readonly #o: ThrottleOptions;
  readonly #now: () => number;

  constructor(kv: KV, opts: ThrottleOptions, now: () => number = Date.now) {
    this.#kv = kv;
    this.#o = opts;
    this.#now = now;
  }

  async #read(key: string): Promise<{ rec: ThrottleRecord | null; revision: number }> {
    const e = await this.#kv.get(key);
    if (e?.operation !== 'PUT') return { rec: null, revision: e?.revision ?? 0 };
    return { rec: decode(e.value), revision: e.revision };
  }

  /** Seconds until every given key's ban is over (0: none banned). */
  async bannedFor(keys: Array<[ThrottleScope, string]>): Promise<number> {
    const now = this.#now();
    const recs = await Promise.all(keys.map(([s, n]) => this.#read(throttleKey(s, n))));
    const until = Math.max(0, ...recs.map((r) => r.rec?.until ?? 0));
    return until > now ? Math.ceil((until - now) / 1000) : 0;
  }

  /** Change one record with compare-and-set, re-reading after a lost race. */
  async #update(key: string, change: (r: ThrottleRecord | null) => ThrottleRecord | null): Promise<void> {
    for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
      const { rec, revision } = await this.#read(key);
      const next = change(rec);
      if (!next) return;
      try {
        const value = encoder.encode(JSON.stringify(next));
        if (revision === 0) await this.#kv.create(key, value);
        else await this.#kv.update(key, value, revision);
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
      }
    }
    throw new Error(`auth throttle: ${key} kept changing under ${CAS_ATTEMPTS} attempts`);
  }

  /** Count one failure against a key; resolves whether it imposed a ban. */
  async fail(scope: ThrottleScope, name: string): Promise<boolean> {
    const max = scope === 'ip' ? this.#o.maxFailuresPerIp : this.#o.maxFailuresPerUser;
    let banned = false;
    await this.#update(throttleKey(scope, name), (r) => {
      const now = this.#now();
      const rec: ThrottleRecord = r ? { ...r } : { n: 0, since: now, bans: 0, until: 0 };
      if (now - rec.since >= this.#o.windowSeconds * 1000) {
        rec.n = 0;
        rec.since = now;
      }
      rec.n += 1;
      banned = false;
      if (rec.n >= max) {
        const seconds = Math.min(this.#o.banSeconds * 2 ** rec.bans, this.#o.maxBanSeconds);
        rec.bans += 1;
        rec.until = now + seconds * 1000;
        rec.n = 0;
        rec.since = now;
        banned = true;
      }
      return rec;
    });
    return banned;
  }

  /** A successful login: the user's failure count starts again (its ban history stays). */
  async succeed(user: string): Promise<void> {
    await this.#update(throttleKey('user', user), (r) =>
      r && r.n > 0 ? { ...r, n: 0, since: this.#now() } : null,
    );
  }
}
