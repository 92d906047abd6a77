/**
 * Brute-force protection shared by every submission replica, in
 * buckets.authThrottle (the records and keys: throttle-records.ts; the
 * design: decisions 0029 and 0040). Each attempt is counted three times:
 *
 * - per client network (ip): maxFailuresPerIp failures in the window ban the
 *   network, whatever user it tries next;
 * - per user from that network (user-network): maxFailuresPerUserNetwork
 *   failures ban that user from that network only — an attacker failing on
 *   purpose locks the user out of the attacker's network, not out of the
 *   user's own;
 * - per user from anywhere (user): maxFailuresPerUser failures (set well
 *   above the others) brake the user — 454 4.7.0 until the window is over —
 *   except from the user's usual networks (a success from there within the
 *   last day), so distributed guessing at one account stops while its owner
 *   keeps working.
 *
 * Bans (ip, user-network) escalate: the first lasts banSeconds, each further
 * ban of the same key twice as long, up to maxBanSeconds (a record, with its
 * ban count, is forgotten a day after its last write: authThrottleTtlMs).
 * The brake does not escalate. Every write is compare-and-set on the KV
 * revision, so replicas counting the same key at once all count (the loser
 * re-reads and tries again); the same compare-and-set makes "ban imposed"
 * and "ban over" each reported by exactly one replica (logged once).
 * A success resets the user-network count and marks the network usual; it
 * never clears the client network's count (one account's good password must
 * not buy its client guesses at other accounts) nor the user's global count
 * (the owner logging in must not reset a distributed attacker's budget).
 */
import type { KV } from '@nats-io/kv';
import { authThrottleTtlMs } from '@sluice/proto';
import {
  type AttemptKeys,
  readThrottleRecord,
  type ThrottleRecord,
  type ThrottleScope,
  updateThrottleRecord,
} from './throttle-records.ts';
import type { ThrottleOptions } from './types.ts';

/** A usual network's mark is rewritten at most this often (one KV write per user and network per hour). */
const USUAL_REFRESH_MS = 3_600_000;
const SCOPES: ThrottleScope[] = ['ip', 'user-network', 'user'];

/** A ban (or brake) imposed or found over: what the log line says. */
export interface BanEvent {
  scope: ThrottleScope;
  key: string;
  /** Length of the ban imposed, seconds (0 for an end). */
  seconds: number;
  /** Failures that led to it (0 for an end). */
  failures: number;
  /** Bans of this key so far. */
  bans: number;
}

/** What stops an attempt before its password is checked. */
export interface Block {
  scope: ThrottleScope;
  retryAfterSeconds: number;
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

  /**
   * The block on an attempt (the longest-lasting ban first; the brake only
   * when the network is not one the user logged in from within the last
   * day), and the keys whose ban is over but not yet noted (endBan).
   */
  async check(keys: AttemptKeys): Promise<{ block?: Block; over: ThrottleScope[] }> {
    const now = this.#now();
    const [ip, userNetwork, user] = await Promise.all(SCOPES.map((s) => this.#read(keys[s])));
    const recs = { ip: ip!.rec, 'user-network': userNetwork!.rec, user: user!.rec };
    const over = SCOPES.filter((s) => {
      const until = recs[s]?.until ?? 0;
      return until > 0 && until <= now;
    });
    const ok = recs['user-network']?.ok ?? 0;
    const usual = ok > 0 && now - ok < authThrottleTtlMs;
    let block: Block | undefined;
    for (const scope of SCOPES) {
      const until = recs[scope]?.until ?? 0;
      if (until <= now || (scope === 'user' && usual)) continue;
      const retryAfterSeconds = Math.ceil((until - now) / 1000);
      if (!block || retryAfterSeconds > block.retryAfterSeconds) block = { scope, retryAfterSeconds };
    }
    return { block, over };
  }

  #read(key: string) {
    return readThrottleRecord(this.#kv, key);
  }

  #update(key: string, change: (r: ThrottleRecord | null) => ThrottleRecord | null): Promise<boolean> {
    return updateThrottleRecord(this.#kv, key, change);
  }

  #limit(scope: ThrottleScope): number {
    if (scope === 'ip') return this.#o.maxFailuresPerIp;
    return scope === 'user' ? this.#o.maxFailuresPerUser : this.#o.maxFailuresPerUserNetwork;
  }

  /** Count one failure against a key; resolves the ban (or brake) it imposed, if any. */
  async #fail(scope: ThrottleScope, key: string): Promise<BanEvent | undefined> {
    const max = this.#limit(scope);
    let event: BanEvent | undefined;
    await this.#update(key, (r) => {
      const now = this.#now();
      const rec: ThrottleRecord = r ? { ...r } : { n: 0, since: now, bans: 0, until: 0 };
      if (now - rec.since >= this.#o.windowSeconds * 1000) {
        rec.n = 0;
        rec.since = now;
      }
      rec.n += 1;
      event = undefined;
      if (rec.n >= max) {
        // The brake lasts one window and does not escalate; a ban doubles each time (decision 0040).
        const seconds =
          scope === 'user'
            ? this.#o.windowSeconds
            : Math.min(this.#o.banSeconds * 2 ** rec.bans, this.#o.maxBanSeconds);
        event = { scope, key, seconds, failures: rec.n, bans: rec.bans + 1 };
        rec.bans += 1;
        rec.until = now + seconds * 1000;
        rec.n = 0;
        rec.since = now;
      }
      return rec;
    });
    return event;
  }

  /** Count one failure in every scope; resolves the bans imposed (each reported by one replica only). */
  async fail(keys: AttemptKeys): Promise<BanEvent[]> {
    const events = await Promise.all(SCOPES.map((s) => this.#fail(s, keys[s])));
    return events.filter((e): e is BanEvent => e !== undefined);
  }

  /**
   * Note that a key's ban is over (until back to 0, its ban count kept for
   * the escalation); resolves the event when this call noted it, undefined
   * when another replica did first (or a new ban began).
   */
  async endBan(scope: ThrottleScope, key: string): Promise<BanEvent | undefined> {
    let bans = 0;
    const wrote = await this.#update(key, (r) => {
      if (!r || r.until === 0 || r.until > this.#now()) return null;
      bans = r.bans;
      return { ...r, until: 0 };
    });
    return wrote ? { scope, key, seconds: 0, failures: 0, bans } : undefined;
  }

  /**
   * A successful login: the user's count on this network starts again and
   * the network becomes one of the user's usual ones (rewritten at most
   * hourly, which also keeps the record alive while the user keeps coming).
   */
  async succeed(keys: AttemptKeys): Promise<void> {
    await this.#update(keys['user-network'], (r) => {
      const now = this.#now();
      if (r && r.n === 0 && r.ok !== undefined && now - r.ok < USUAL_REFRESH_MS) return null;
      return { ...(r ?? { bans: 0, until: 0 }), n: 0, since: now, ok: now };
    });
  }
}
