/**
 * The JetStream storage budget and how it is divided, so that no stream can
 * fill the disk and the delivery ledger always has room (docs/decisions/0008).
 *
 * Budget B (bytes), from bus.store.budget, else automatic:
 *   embedded server: freeSpaceFraction x (free bytes of the store disk + bytes
 *     the store already holds), measured at start; the embedded nats-server
 *     gets max_file_store = B, so JetStream itself never writes more;
 *   remote NATS: the account's max_storage when it has one, else 4 GiB.
 *
 * Shares of B (every object gets max_bytes AND max_msgs):
 *   bodies (object store) 34.5%   deliver 14%   resolve 8%   rewrite 8%
 *   events 6.5%   dead letters 4.75%   ledger 8%   LDAP snapshot 1%
 *   MTA-STS policy cache 0.5%   greylist 2%   MX session counters 0.5%
 *   credential snapshot 0.25%   auth throttle 0.25%   submission rates 0.25%
 *   egress queue index 0.8%   egress destination states 0.2%
 *   unallocated reserve 10%
 * max_msgs = max_bytes / 256 (bytes per message, the smallest envelope or
 * ledger entry with its headers), so the message index is bounded too.
 *
 * JetStream reserves each stream's max_bytes at creation against the server
 * limit: the work streams can fill up to their share and no further, so the
 * ledger's share and the reserve (consumer state, acks, KV metadata, Raft)
 * are never taken by them. A work stream at its limit refuses new messages
 * (discard new): the ingress answers 452 4.3.1, later stages wait.
 * On nats-server < 2.10.5 discard-new objects get no max_bytes (see
 * `bytesLimitSafe`): there the free-space guard keeps the reserve instead.
 */
import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { JetStreamManager } from '@nats-io/jetstream';

/** How B is divided; the rest (10%) stays unreserved for consumer state and metadata. */
export const STORE_SHARES = {
  bodies: 0.345,
  deliver: 0.14,
  resolve: 0.08,
  rewrite: 0.08,
  events: 0.065,
  dead: 0.0475,
  ledger: 0.08,
  /** The resolver's LDAP snapshot bucket (a few versions of ~60 KB per 10,000 entries). */
  ldapSnapshot: 0.01,
  /** The egress' MTA-STS policy cache (one small policy per destination domain; taken from events). */
  mtaStsPolicies: 0.005,
  /** The egress' TLS-RPT day counts and send markers (one small key per policy domain and day; taken from events). */
  tlsReports: 0.005,
  /** The filter's greylist triplets (KV, discard old: a full bucket forgets its oldest triplets). */
  greylist: 0.02,
  /** The MX's per-client session counters (KV, discard old; keys live two minutes; taken from events). */
  sessionRate: 0.005,
  /** Submission sending-rate counters (KV, TTL'd, discard old; taken from dead letters). */
  submissionRates: 0.0025,
  /** The submission credential snapshot (KV, one ~200-byte key per directory user; discard new). */
  credentials: 0.0025,
  /** The submission brute-force counters and bans (KV, TTL'd, discard old: losing an old counter is harmless). */
  authThrottle: 0.0025,
  /** The egress queue index: one small entry per deferred or held part (taken from events). */
  egressQueue: 0.008,
  /** The egress destination states: one entry per destination backed off (taken from events). */
  egressDestinations: 0.002,
} as const;

export type StoreObject = keyof typeof STORE_SHARES;

/** The unallocated part of the budget (10%): the guard refuses new mail before it is touched. */
export const RESERVE_SHARE = 1 - Object.values(STORE_SHARES).reduce((a, b) => a + b, 0);

/** Bytes per message used to derive max_msgs from max_bytes. */
export const BYTES_PER_MESSAGE = 256;

/** The automatic budget against a remote NATS that states no account limit. */
export const REMOTE_DEFAULT_BUDGET = 4 * 1024 ** 3;

/** Smallest limit given to any object, so a tiny budget still takes a message. */
const MIN_OBJECT_BYTES = 64 * 1024;

export interface ObjectLimits {
  maxBytes: number;
  maxMsgs: number;
}

export type StoreLimits = Record<StoreObject, ObjectLimits> & {
  budgetBytes: number;
  /**
   * Whether max_bytes may be set on a discard-new stream. nats-server before
   * 2.10.5 underestimates a message's stored size when it checks max_bytes
   * for discard new, admits it, then trims the stream FROM THE FRONT: it
   * silently deletes the oldest messages, i.e. accepted mail
   * (nats-io/nats-server#4771, #4775, fixed by #4772). On such servers the
   * discard-new objects (work streams, dead letters, ledger, bodies) get only
   * max_msgs, whose check is exact, and their bytes are bounded by the
   * server's max_file_store and the free-space guard, which keeps the
   * reserve free.
   */
  bytesLimitSafe: boolean;
};

/** The first nats-server release where max_bytes with discard new never deletes old messages. */
export const SAFE_DISCARD_NEW_BYTES_VERSION = '2.10.5';

/** Whether `version` (x.y.z) is at least `wanted`. */
export function versionAtLeast(version: string | undefined, wanted: string): boolean {
  const parse = (v: string) =>
    v
      .split(/[.-]/)
      .slice(0, 3)
      .map((n) => Number.parseInt(n, 10) || 0);
  if (!version) return false;
  const [a, b] = [parse(version), parse(wanted)];
  for (let i = 0; i < 3; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return true;
}

/** The limits of every object for budget B; `workMaxBytes` > 0 overrides the three work streams. */
export function divideStoreBudget(
  budgetBytes: number,
  workMaxBytes = -1,
  bytesLimitSafe = true,
): StoreLimits {
  const out = { budgetBytes, bytesLimitSafe } as StoreLimits;
  for (const [name, share] of Object.entries(STORE_SHARES) as [StoreObject, number][]) {
    const isWork = name === 'resolve' || name === 'rewrite' || name === 'deliver';
    const maxBytes =
      isWork && workMaxBytes > 0 ? workMaxBytes : Math.max(MIN_OBJECT_BYTES, Math.floor(budgetBytes * share));
    out[name] = { maxBytes, maxMsgs: Math.max(1, Math.floor(maxBytes / BYTES_PER_MESSAGE)) };
  }
  return out;
}

/** Free bytes for unprivileged writers on the file system holding `dir`. */
export async function freeBytesOf(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/** Bytes of the regular files under `dir` (the store's current size; 0 when missing). */
export async function bytesUnder(dir: string): Promise<number> {
  let total = 0;
  let entries: import('node:fs').Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await bytesUnder(p);
    else if (e.isFile()) total += (await stat(p).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/** The automatic budget of an embedded server whose store is (or will be) in `storeDir`. */
export async function embeddedStoreBudget(storeDir: string, freeSpaceFraction: number): Promise<number> {
  const [free, used] = await Promise.all([freeBytesOf(storeDir), bytesUnder(storeDir)]);
  return Math.floor((free + used) * freeSpaceFraction);
}

/** The budget against a server we did not start: the configured one, else the account limit, else 4 GiB. */
export async function remoteStoreBudget(jsm: JetStreamManager): Promise<{ bytes: number; source: string }> {
  const info = await jsm.getAccountInfo();
  const limit = info.limits?.max_storage ?? -1;
  if (limit > 0) return { bytes: limit, source: 'account max_storage' };
  return { bytes: REMOTE_DEFAULT_BUDGET, source: 'default (the account states no limit)' };
}
