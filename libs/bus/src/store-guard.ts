/**
 * The free-space guard: is there still room to take new mail? nats-server
 * 2.9 hangs instead of failing cleanly when its disk is really full, so the
 * ingress must refuse (452 4.3.1, RFC 5321 §4.2.5 / RFC 3463 X.3.1) well
 * before that, while the mail already accepted can still move and its
 * ledger entries and acks can still be written.
 *
 * Room left = the smaller of
 *   - the free bytes of the disk holding the JetStream store (statfs), when
 *     the server is our embedded one and we know its directory;
 *   - the store budget minus its unallocated reserve (10%) minus what the
 *     account already stores (JetStream account info), which is how a remote
 *     NATS is watched, and how the reserve stays free for ledger writes and
 *     acks where the server cannot cap discard-new streams by bytes (2.9).
 * The guard trips when room left < bus.store.minFreeBytes. A sample is
 * reused for `sampleMs`, so a burst of messages costs one statfs and one
 * account-info request per second. Trips and recoveries are logged once.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { BusLog } from './bus-log.ts';
import { freeBytesOf } from './store-budget.ts';

export interface StoreRoom {
  /** false: refuse new mail. */
  ok: boolean;
  /** Bytes left before the guard's threshold is the only room left (may be negative). */
  freeBytes: number;
  /** What was short: 'disk' or 'budget' (when !ok). */
  short?: 'disk' | 'budget';
}

export interface StoreGuardOptions {
  minFreeBytes: number;
  /** The embedded server's store directory, whose disk is watched. */
  storeDir?: string;
  /** The budget in bytes (known once the topology is declared). */
  budgetBytes(): number;
  /** Part of the budget new mail may never use (the reserve). */
  reserveBytes(): number;
  jsm(): Promise<JetStreamManager>;
  log: BusLog;
  sampleMs?: number;
}

export class StoreGuard {
  readonly #o: StoreGuardOptions;
  #last: { at: number; room: StoreRoom } | null = null;
  #sampling: Promise<StoreRoom> | null = null;
  #tripped = false;

  constructor(o: StoreGuardOptions) {
    this.#o = o;
  }

  /** Whether new mail may be taken now (a recent sample, or a fresh one). */
  room(): Promise<StoreRoom> {
    const maxAge = this.#o.sampleMs ?? 1000;
    if (this.#last && Date.now() - this.#last.at < maxAge) return Promise.resolve(this.#last.room);
    this.#sampling ??= this.#sample().finally(() => {
      this.#sampling = null;
    });
    return this.#sampling;
  }

  async #sample(): Promise<StoreRoom> {
    const { minFreeBytes, storeDir, log } = this.#o;
    let disk = Number.POSITIVE_INFINITY;
    let budget = Number.POSITIVE_INFINITY;
    if (storeDir) {
      disk = await freeBytesOf(storeDir).catch((err: unknown) => {
        log.warn({ err, storeDir }, 'cannot read the free space of the store disk');
        return Number.POSITIVE_INFINITY;
      });
    }
    try {
      const info = await (await this.#o.jsm()).getAccountInfo();
      budget = this.#o.budgetBytes() - this.#o.reserveBytes() - info.storage;
    } catch (err) {
      // NATS unreachable: the publish will fail on its own (451); do not guess the space.
      log.debug({ err }, 'JetStream account info unavailable for the free-space guard');
    }
    const free = Math.min(disk, budget);
    const ok = free >= minFreeBytes;
    const room: StoreRoom = { ok, freeBytes: free - minFreeBytes };
    if (!ok) room.short = disk <= budget ? 'disk' : 'budget';
    if (!ok && !this.#tripped) {
      log.warn(
        { freeBytes: free, minFreeBytes, short: room.short, storeDir },
        'store almost full: refusing new mail with 452 4.3.1 until room is made',
      );
    } else if (ok && this.#tripped) {
      log.info({ freeBytes: free, minFreeBytes }, 'store has room again: taking new mail');
    }
    this.#tripped = !ok;
    this.#last = { at: Date.now(), room };
    return room;
  }
}
