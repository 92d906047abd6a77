/**
 * The LDAP snapshot bucket (buckets.ldapSnapshot): one key holding the last
 * directory read the resolver accepted, shared by every resolver replica so
 * that a replica started while LDAP is down still answers (from the snapshot
 * its peers stored). The value is opaque bytes to the bus (the resolver
 * encodes it); the bus gives compare-and-set on the KV revision, so two
 * replicas refreshing at once cannot overwrite a newer snapshot with an older
 * one, and a watch so every replica swaps in a snapshot any replica stored.
 */
import type { KV } from '@nats-io/kv';
import { ldapSnapshotKey } from '@sluice/proto';

export interface StoredSnapshot {
  value: Uint8Array;
  /** The KV revision (the stream sequence): the compare-and-set token. */
  revision: number;
}

export async function snapshotGet(kv: KV): Promise<StoredSnapshot | null> {
  const e = await kv.get(ldapSnapshotKey);
  if (!e || e.operation !== 'PUT') return null;
  return { value: e.value, revision: e.revision };
}

/**
 * Store a snapshot only if the key is still at `expectedRevision` (0: absent).
 * Resolves the new revision, or null when another writer got there first.
 */
export async function snapshotPut(
  kv: KV,
  value: Uint8Array,
  expectedRevision: number,
): Promise<number | null> {
  try {
    return expectedRevision === 0
      ? await kv.create(ldapSnapshotKey, value)
      : await kv.update(ldapSnapshotKey, value, expectedRevision);
  } catch (err) {
    // JetStream's "wrong last sequence" (10071) / "key exists": someone else wrote first.
    if (/wrong last sequence|key exists|10071/i.test((err as Error).message ?? '')) return null;
    throw err;
  }
}

/** Call `onSnapshot` with every snapshot stored from now on (and the current one). Returns a stop function. */
export async function snapshotWatch(kv: KV, onSnapshot: (s: StoredSnapshot) => void): Promise<() => void> {
  const iter = await kv.watch({ key: ldapSnapshotKey });
  void (async () => {
    for await (const e of iter) {
      if (e.operation === 'PUT') onSnapshot({ value: e.value, revision: e.revision });
    }
  })().catch(() => {});
  return () => iter.stop();
}
