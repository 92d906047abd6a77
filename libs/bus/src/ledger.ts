/**
 * The egress' delivery ledger in JetStream KV: one JSON entry per (message,
 * final recipient) that was delivered or failed for good, written (PubAck
 * awaited) before the envelope is acked, so a redelivered envelope never
 * delivers to that recipient twice. The key names the queue id and the final
 * address — not the part: after a routing change between a crash and the
 * redelivery a recipient can land in another part, and must still be known as
 * delivered (decisions/0006). KV keys allow only [-/_=.a-zA-Z0-9] (and no
 * leading or trailing dot), so callers must not put raw addresses in keys:
 * `ledgerKey` hashes the recipient.
 */
import { createHash } from 'node:crypto';
import type { KV } from '@nats-io/kv';
import type { LedgerEntry } from './types.ts';

const KEY = /^[-/_=.a-zA-Z0-9]+$/;

export class InvalidLedgerKeyError extends Error {
  override name = 'InvalidLedgerKeyError';
}

/**
 * The ledger key of one final recipient of one message:
 * `<queueId>.<sha256(recipient) in hex, first 32>`. The domain is compared
 * in lower case (RFC 5321 §2.4: domains are case-insensitive; the local part
 * is not, so it is kept as is).
 */
export function ledgerKey(queueId: string, recipient: string): string {
  return `${queueId}.${addressDigest(recipientIdentity(recipient))}`;
}

/**
 * The key the first releases wrote, per part (`<partId>.<digest of the
 * address as given>`): read for parts with a positional id, which only an
 * old resolver made, so an upgrade in the middle of a retry does not deliver
 * twice.
 */
export function legacyLedgerKey(partId: string, recipient: string): string {
  return `${partId}.${addressDigest(recipient)}`;
}

function addressDigest(s: string): string {
  return createHash('sha256').update(s, 'utf8').digest('hex').slice(0, 32);
}

/** local@domain with the domain in lower case. */
function recipientIdentity(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? address : `${address.slice(0, at)}@${address.slice(at + 1).toLowerCase()}`;
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
