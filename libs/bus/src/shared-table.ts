/**
 * A small key/value table in a JetStream KV bucket, shared by every replica of
 * a service: the egress' delivery-queue index and destination states
 * (proto buckets.egressQueue, buckets.egressDestinations). Values are JSON.
 *
 * Writes are plain puts, or compare-and-set on the revision a reader saw
 * (update: null when another writer came in between), so replicas acting on
 * the same key never overwrite each other blindly. `entries()` reads the whole
 * table once (a KV watch over the current values, history off), and `watch`
 * follows every change made by any replica, for in-memory caches.
 */
import type { KV, KvEntry } from '@nats-io/kv';

export interface TableRow<T> {
  key: string;
  value: T;
  revision: number;
}

export interface SharedTable<T> {
  get(key: string): Promise<TableRow<T> | null>;
  /** Write unconditionally; resolves the new revision. */
  put(key: string, value: T): Promise<number>;
  /** Write only if the key is still at `revision` (0: absent); null when it is not. */
  update(key: string, value: T, revision: number): Promise<number | null>;
  delete(key: string): Promise<void>;
  /** Every current row. */
  entries(): Promise<Array<TableRow<T>>>;
  /** Current rows, then every change (value null: deleted); returns the stop function. */
  watch(onChange: (key: string, value: T | null) => void): Promise<() => void>;
}

/** The longest a whole-table read may take. */
const ENTRIES_TIMEOUT_MS = 10_000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** JetStream's "wrong last sequence" (10071) or "key exists": the compare-and-set lost. */
function isConflict(err: unknown): boolean {
  return /wrong last sequence|10071|key exists/i.test((err as Error)?.message ?? '');
}

function decode<T>(e: KvEntry): T | null {
  if (e.operation !== 'PUT' || e.value.length === 0) return null;
  try {
    return JSON.parse(decoder.decode(e.value)) as T;
  } catch {
    return null;
  }
}

export function sharedTable<T>(open: () => Promise<KV>): SharedTable<T> {
  return {
    async get(key) {
      const e = await (await open()).get(key);
      const value = e ? decode<T>(e) : null;
      return e && value !== null ? { key, value, revision: e.revision } : null;
    },
    async put(key, value) {
      return (await open()).put(key, encoder.encode(JSON.stringify(value)));
    },
    async update(key, value, revision) {
      const kv = await open();
      try {
        const data = encoder.encode(JSON.stringify(value));
        return revision === 0 ? await kv.create(key, data) : await kv.update(key, data, revision);
      } catch (err) {
        if (isConflict(err)) return null;
        throw err;
      }
    },
    async delete(key) {
      await (await open()).delete(key);
    },
    async entries() {
      const kv = await open();
      const rows: Array<TableRow<T>> = [];
      // Deletes are read too (and skipped): the last value's `delta` of 0 ends the read.
      if ((await kv.status()).values === 0) return rows;
      const iter = await kv.watch();
      // Bounded: a read that never reaches the last value is an error, not a hang.
      const timer = setTimeout(() => iter.stop(), ENTRIES_TIMEOUT_MS);
      let complete = false;
      try {
        for await (const e of iter) {
          const value = decode<T>(e);
          if (value !== null) rows.push({ key: e.key, value, revision: e.revision });
          if (e.delta === 0) {
            complete = true;
            break;
          }
        }
      } finally {
        clearTimeout(timer);
        iter.stop();
      }
      if (!complete) throw new Error(`reading the table did not finish within ${ENTRIES_TIMEOUT_MS} ms`);
      return rows;
    },
    async watch(onChange) {
      const iter = await (await open()).watch();
      void (async () => {
        for await (const e of iter) onChange(e.key, decode<T>(e));
      })().catch(() => {});
      return () => iter.stop();
    },
  };
}
