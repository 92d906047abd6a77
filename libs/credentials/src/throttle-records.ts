/**
 * What buckets.authThrottle holds (decision 0040), shared by the
 * authenticator (auth-throttle.ts) and the operator's commands
 * (throttle-admin.ts, `sluice auth bans|unban`): three kinds of record, each
 * counting failures in a fixed window, under keys that hold no name as typed:
 *
 *   ip.<N>        a client network, whatever user it tries (ban, escalating)
 *   user.<U>.<N>  one user from one client network (ban of that user from
 *                 that network only, escalating; also remembers the user's
 *                 last success from there: a "usual network")
 *   user.<U>      one user from anywhere (the distributed-guessing brake:
 *                 454 4.7.0 until the window is over, not on usual networks)
 *
 * N and U are the first 32 hex digits of the SHA-256 of the lower-case
 * network (`192.0.2.7`, `2001:db8:1:2::/64`) and user id: the user field is
 * whatever the client typed — often enough a password — and the bucket is
 * readable by anyone with NATS access, so neither sits there readable. An
 * operator finds a key from a name (hashName); the commands map user hashes
 * back to the ids in the credential snapshot.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';

export type ThrottleScope = 'ip' | 'user-network' | 'user';

export interface ThrottleRecord {
  /** Failures in the current window. */
  n: number;
  /** Start of the current window, ms epoch. */
  since: number;
  /** Bans imposed so far (the next one lasts banSeconds * 2^bans; for the brake: times braked). */
  bans: number;
  /** Banned (braked) until, ms epoch (0: not banned, or its end was noted). */
  until: number;
  /** user-network records: the user's last successful login from this network, ms epoch. */
  ok?: number;
}

/** The three keys one attempt touches. */
export interface AttemptKeys {
  ip: string;
  'user-network': string;
  user: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The first 32 hex digits of sha256(lower-case name): how a name appears in a key. */
export function hashName(name: string): string {
  return createHash('sha256').update(name.toLowerCase(), 'utf8').digest('hex').slice(0, 32);
}

export function attemptKeys(network: string, user: string): AttemptKeys {
  const n = hashName(network);
  const u = hashName(user);
  return { ip: `ip.${n}`, 'user-network': `user.${u}.${n}`, user: `user.${u}` };
}

/** The scope a key belongs to, with its hashes; undefined for a key that is none of ours. */
export function parseThrottleKey(
  key: string,
): { scope: ThrottleScope; userHash?: string; networkHash?: string } | undefined {
  const parts = key.split('.');
  if (parts[0] === 'ip' && parts.length === 2) return { scope: 'ip', networkHash: parts[1] };
  if (parts[0] === 'user' && parts.length === 2) return { scope: 'user', userHash: parts[1] };
  if (parts[0] === 'user' && parts.length === 3)
    return { scope: 'user-network', userHash: parts[1], networkHash: parts[2] };
  return undefined;
}

export function encodeThrottleRecord(r: ThrottleRecord): Uint8Array {
  return encoder.encode(JSON.stringify(r));
}

export function decodeThrottleRecord(value: Uint8Array): ThrottleRecord | null {
  try {
    const r = JSON.parse(decoder.decode(value)) as ThrottleRecord;
    return typeof r.n === 'number' ? r : null;
  } catch {
    return null;
  }
}

function isConflict(err: unknown): boolean {
  return /wrong last sequence|10071|key exists/i.test((err as Error)?.message ?? '');
}

const CAS_ATTEMPTS = 20;

/** A record and the KV revision it was read at (0: none stored; a deleted key keeps its revision). */
export async function readThrottleRecord(
  kv: KV,
  key: string,
): Promise<{ rec: ThrottleRecord | null; revision: number }> {
  const e = await kv.get(key);
  if (e?.operation !== 'PUT') return { rec: null, revision: e?.revision ?? 0 };
  return { rec: decodeThrottleRecord(e.value), revision: e.revision };
}

/**
 * Change one record with compare-and-set on the revision read, re-reading
 * after a lost race (another replica wrote in between); `change` returning
 * null writes nothing. Resolves whether this call wrote.
 */
export async function updateThrottleRecord(
  kv: KV,
  key: string,
  change: (r: ThrottleRecord | null) => ThrottleRecord | null,
): Promise<boolean> {
  for (let attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
    const { rec, revision } = await readThrottleRecord(kv, key);
    const next = change(rec);
    if (!next) return false;
    try {
      const value = encodeThrottleRecord(next);
      if (revision === 0) await kv.create(key, value);
      else await kv.update(key, value, revision);
      return true;
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }
  throw new Error(`auth throttle: ${key} kept changing under ${CAS_ATTEMPTS} attempts`);
}
