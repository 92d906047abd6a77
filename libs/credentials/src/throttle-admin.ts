/**
 * The operator's view of buckets.authThrottle (`sluice auth bans`, `sluice
 * auth unban`): list the records — all, or those of one client network or
 * one user, found by hashing the name as the authenticator does
 * (throttle-records.ts) — and lift bans. Lifting is a compare-and-set like
 * every other write to the bucket, so it cannot lose a failure a replica
 * counts at the same moment; it clears the failures, the ban and its
 * escalation, and keeps a user's "usual network" mark (decision 0040).
 */
import type { KV } from '@nats-io/kv';
import {
  parseThrottleKey,
  readThrottleRecord,
  type ThrottleRecord,
  type ThrottleScope,
  updateThrottleRecord,
} from './throttle-records.ts';

export interface ThrottleEntry {
  key: string;
  scope: ThrottleScope;
  userHash?: string;
  networkHash?: string;
  record: ThrottleRecord;
}

/** Which records: those of a network (its hash) or of a user (its hash); none given: all. */
export interface ThrottleFilter {
  networkHash?: string;
  userHash?: string;
}

/** The key filters (NATS subjects below the bucket) that hold a network's or a user's records. */
function keyFilters(f: ThrottleFilter): string[] {
  if (f.networkHash) return [`ip.${f.networkHash}`, `user.*.${f.networkHash}`];
  if (f.userHash) return [`user.${f.userHash}`, `user.${f.userHash}.*`];
  return ['>'];
}

/** Whether a record bans (or brakes) now. */
export function isActive(r: ThrottleRecord, now: number): boolean {
  return r.until > now;
}

export async function listThrottleEntries(kv: KV, filter: ThrottleFilter = {}): Promise<ThrottleEntry[]> {
  const keys = new Set<string>();
  // One filter per call: nats-server 2.9 takes a single filter subject.
  for (const f of keyFilters(filter)) for await (const k of await kv.keys(f)) keys.add(k);
  const entries: ThrottleEntry[] = [];
  for (const key of [...keys].sort()) {
    const parsed = parseThrottleKey(key);
    if (!parsed) continue;
    const { rec } = await readThrottleRecord(kv, key);
    if (rec) entries.push({ key, ...parsed, record: rec });
  }
  return entries;
}

/**
 * Lift every ban and failure count of a network or a user (filter required:
 * lifting everything at once is not an operator's 3 a.m. command). Resolves
 * the entries that were banning at the time, as they were.
 */
export async function liftBans(
  kv: KV,
  filter: ThrottleFilter,
  now: () => number = Date.now,
): Promise<{ lifted: ThrottleEntry[]; cleared: number }> {
  if (!filter.networkHash && !filter.userHash) throw new Error('liftBans needs a network or a user');
  const lifted: ThrottleEntry[] = [];
  let cleared = 0;
  for (const e of await listThrottleEntries(kv, filter)) {
    let was: ThrottleRecord | undefined;
    const wrote = await updateThrottleRecord(kv, e.key, (r) => {
      if (!r || (r.n === 0 && r.until === 0 && r.bans === 0)) return null;
      was = r;
      return { ...r, n: 0, since: now(), bans: 0, until: 0 };
    });
    if (!wrote || !was) continue;
    cleared += 1;
    if (isActive(was, now())) lifted.push({ ...e, record: was });
  }
  return { lifted, cleared };
}
