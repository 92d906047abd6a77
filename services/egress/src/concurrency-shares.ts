/**
 * A destination's maxConcurrency across replicas, for destinations with an explicit
 * `egress.destinations[].maxConcurrency` rule (decision 0042): each replica holds a share
 * of the destination's slots in one KV record (key `conc.<destination>` in the
 * destinations bucket), `holders: { replica: { slots, until, wants } }`, and admits
 * attempts only within its share (destination-scheduler.ts). No write per attempt:
 *
 *   - grow: a replica whose attempts fill its share takes more free slots (a quarter
 *     of the maximum at a time, compare-and-set); when none are free it marks itself
 *     as wanting and its part is postponed as busy;
 *   - renew (every SHARE_TTL_MS / 3, one write per active destination): a share is
 *     cut to the attempts in flight (idle slots go back), and to a fair share
 *     (max ÷ replicas holding or wanting) when another replica wants slots;
 *   - expire: a share not renewed for SHARE_TTL_MS (its replica died) no longer
 *     counts; a replica that stops deletes its shares.
 *
 * Destinations without a rule keep egress.destinationConcurrency per process: a
 * record per destination for every domain mail goes to would put a KV write on the
 * first attempt of most messages.
 */
import type { SharedTable } from '@sluice/bus';
import { destinationKey } from './queue-destination.ts';

export const CONCURRENCY_KEY_PREFIX = 'conc.';
/** A share not renewed this long no longer counts (its replica died). */
export const SHARE_TTL_MS = 30_000;
const CHANGE_TRIES = 10;
/** After finding no free slot, do not ask the record again for this long (a busy destination's parts keep coming). */
const FULL_RECHECK_MS = 1000;

interface Holder {
  slots: number;
  /** Renewed until (epoch ms). */
  until: number;
  /** Has parts waiting for slots another replica holds. */
  wants?: boolean;
}

export interface ShareRecord {
  destination: string;
  max: number;
  holders: Record<string, Holder>;
}

export interface ConcurrencySharesOptions {
  table: SharedTable<ShareRecord>;
  instance: string;
  now?: () => number;
  ttlMs?: number;
}

export class ConcurrencyShares {
  readonly #table: SharedTable<ShareRecord>;
  readonly #me: string;
  readonly #now: () => number;
  readonly #ttl: number;
  /** Per destination: slots held, the maximum, and whether parts waited since the last renewal. */
  readonly #mine = new Map<string, { held: number; max: number; wanted: boolean }>();
  readonly #growing = new Map<string, Promise<void>>();
  /** When a grow last found no free slot, per destination. */
  readonly #full = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | null = null;
  /** KV writes made (tests, the decision's figures). */
  writes = 0;

  constructor(opts: ConcurrencySharesOptions) {
    this.#table = opts.table;
    this.#me = opts.instance;
    this.#now = opts.now ?? Date.now;
    this.#ttl = opts.ttlMs ?? SHARE_TTL_MS;
  }

  /** Slots this replica may use for the destination now. */
  held(destination: string): number {
    return this.#mine.get(destination)?.held ?? 0;
  }

  /** Try to hold more slots (one compare-and-set; concurrent callers share it). */
  grow(destination: string, max: number): Promise<void> {
    const running = this.#growing.get(destination);
    if (running) return running;
    const full = this.#full.get(destination);
    if (full !== undefined && this.#now() - full < FULL_RECHECK_MS) return Promise.resolve();
    const p = this.#grow(destination, max).finally(() => this.#growing.delete(destination));
    this.#growing.set(destination, p);
    return p;
  }

  async #grow(destination: string, max: number): Promise<void> {
    const entry = this.#mine.get(destination) ?? { held: 0, max, wanted: false };
    entry.max = max;
    this.#mine.set(destination, entry);
    await this.#change(destination, max, (others) => {
      const mine = this.#mine.get(destination)!;
      const free = max - others.slots - mine.held;
      if (free > 0) {
        this.#full.delete(destination);
        mine.held += Math.min(free, Math.max(1, Math.ceil(max / 4)));
        return { slots: mine.held, until: this.#now() + this.#ttl };
      }
      const already = mine.wanted;
      mine.wanted = true;
      this.#full.set(destination, this.#now());
      return already ? 'keep' : { slots: mine.held, until: this.#now() + this.#ttl, wants: true };
    });
  }

  /** Renew every share: cut to what is in flight, and to a fair share when others want slots. */
  async renew(inFlight: (destination: string) => number): Promise<void> {
    for (const [destination, entry] of [...this.#mine]) {
      await this.#change(destination, entry.max, (others) => {
        const mine = this.#mine.get(destination) ?? entry;
        let target = Math.min(mine.held, inFlight(destination));
        if (mine.wanted) target = mine.held; // parts waited here: keep what is held
        if (others.wanting > 0) {
          const fair = Math.max(1, Math.floor(mine.max / (others.holders + 1)));
          target = Math.min(target, fair);
        }
        mine.held = target;
        this.#full.delete(destination); // shares changed: look again at the next need
        const wants = mine.wanted;
        mine.wanted = false;
        if (target === 0 && !wants) {
          this.#mine.delete(destination);
          return null;
        }
        return { slots: target, until: this.#now() + this.#ttl, ...(wants ? { wants } : {}) };
      });
    }
  }

  /** Renew on a timer (a third of the TTL). */
  start(inFlight: (destination: string) => number, onError: (err: unknown) => void): void {
    this.#timer = setInterval(() => {
      this.renew(inFlight).catch(onError);
    }, this.#ttl / 3);
    this.#timer.unref();
  }

  /** Give every share back. */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const [destination, mine] of [...this.#mine]) await this.#change(destination, mine.max, () => null);
    this.#mine.clear();
  }

  /**
   * Compare-and-set this replica's holder entry: `next` sees the other live holders'
   * totals and returns the entry, null to remove it, or 'keep' to write nothing.
   */
  async #change(
    destination: string,
    max: number,
    next: (others: { slots: number; holders: number; wanting: number }) => Holder | null | 'keep',
  ): Promise<void> {
    const key = `${CONCURRENCY_KEY_PREFIX}${destinationKey(destination)}`;
    for (let i = 0; i < CHANGE_TRIES; i++) {
      const row = await this.#table.get(key);
      const now = this.#now();
      const live = Object.entries(row?.value.holders ?? {}).filter(
        ([id, h]) => id !== this.#me && h.until > now,
      );
      const others = {
        slots: live.reduce((n, [, h]) => n + h.slots, 0),
        holders: live.filter(([, h]) => h.slots > 0 || h.wants).length,
        wanting: live.filter(([, h]) => h.wants).length,
      };
      const snapshot = this.#mine.get(destination) && { ...this.#mine.get(destination)! };
      const mine = next(others);
      if (mine === 'keep') return;
      const holders = Object.fromEntries(live);
      if (mine) holders[this.#me] = mine;
      const revision = await this.#table.update(key, { destination, max, holders }, row?.revision ?? 0);
      if (revision !== null) {
        this.writes++;
        return;
      }
      if (snapshot) this.#mine.set(destination, snapshot); // lost the race: undo and look again
    }
    throw new Error(`concurrency shares of ${destination} kept changing under ${CHANGE_TRIES} writes`);
  }
}
