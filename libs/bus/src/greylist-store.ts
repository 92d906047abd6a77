/**
 * The filter's greylist triplets in JetStream KV (buckets.greylist), shared
 * by every filter replica so a retry answered by another replica is known.
 * Values are small JSON strings owned by the filter; this module only offers
 * compare-and-set access: `create` fails when the key exists and `update`
 * fails when another replica wrote in between, so two replicas never both
 * believe they saw the first attempt. Keys are chosen by the caller and must
 * be KV-safe ([-/_=.a-zA-Z0-9]; the filter hashes the triplet).
 */
import type { KV } from '@nats-io/kv';

export interface GreylistRecord {
  value: string;
  revision: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JetStream's "wrong last sequence" (10071): the compare-and-set lost. */
export function isConflict(err: unknown): boolean {
  const msg = (err as Error)?.message ?? '';
  return /wrong last sequence|10071|key exists/i.test(msg);
}

export async function greylistGet(kv: KV, key: string): Promise<GreylistRecord | null> {
  const e = await kv.get(key);
  if (e?.operation !== 'PUT' || e.value.length === 0) return null;
  return { value: decoder.decode(e.value), revision: e.revision };
}

/** Write a new key; false when it exists already (another replica was first). */
export async function greylistCreate(kv: KV, key: string, value: string): Promise<boolean> {
  try {
    await kv.create(key, encoder.encode(value));
    return true;
  } catch (err) {
    if (isConflict(err)) return false;
    throw err;
  }
}

/** Replace the value seen at `revision`; false when someone wrote in between. */
export async function greylistUpdate(kv: KV, key: string, value: string, revision: number): Promise<boolean> {
  try {
    await kv.update(key, encoder.encode(value), revision);
    return true;
  } catch (err) {
    if (isConflict(err)) return false;
    throw err;
  }
}
