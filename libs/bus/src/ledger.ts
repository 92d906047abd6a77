/**
 * The egress' delivery ledger in JetStream KV: one JSON entry per (part,
 * recipient) that was delivered or failed for good, written (PubAck awaited)
 * before the envelope is acked, so a redelivered envelope never delivers to
 * that recipient twice. KV keys allow only [-/_=.a-zA-Z0-9] (and no leading
 * or trailing dot), so callers must not put raw addresses in keys:
 * `ledgerKey` hashes the recipient.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { LedgerEntry } from './types.ts';

const KEY = /^[-/_=.a-zA-Z0-9]+$/;

export class InvalidLedgerKeyError extends Error {
  override name = 'InvalidLedgerKeyError';
}

/** The ledger key of one recipient of one part: `<partId>.<sha256(recipient) in hex, first 32>`. */
export function ledgerKey(partId: string, recipient: string): string {
  const digest = createHash('sha256').update(recipient, 'utf8').digest('hex').slice(0, 32);
  return `${partId}.${digest}`;
}

export function assertLedgerKey(key: string): void {
  if (!KEY.test(key) || key.startsWith('.') || key.endsWith('.') || key.includes('..')) {
    throw new InvalidLedgerKeyError(
      `invalid ledger key ${JSON.stringify(key)}: use [-/_=.a-zA-Z0-9] only (hash addresses, see ledgerKey)`,
    );
  }
}

const encoder = new TextEncoder();

export async function ledgerGet(kv: KV, key: string): Promise<LedgerEntry | null> {
  assertLedgerKey(key);
  const e = await kv.get(key);
  if (e === null || e.operation !== 'PUT' || e.length === 0) return null;
  return e.json<LedgerEntry>();
}

/** Resolves after the KV stream acknowledged the write (durable on a quorum). */
export async function ledgerPut(kv: KV, key: string, entry: LedgerEntry): Promise<void> {
  assertLedgerKey(key);
  await kv.put(key, encoder.encode(JSON.stringify(entry)));
}
