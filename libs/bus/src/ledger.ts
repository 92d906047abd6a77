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
 *
 * After a remote 250 the ledger write is what stands between the recipient
 * and a second copy, so `ledgerPutHeld` never gives up on a write the way a
 * publish does: it waits out reconnects and full storage (the ledger bucket
 * has its own reserved share of the store, store-budget.ts) and extends the
 * part's ack deadline while it waits, so JetStream does not hand the part to
 * another attempt meanwhile. Only a stopping stage ends the wait, after a
 * grace period (the part is then redelivered: the one duplicate left).
 *
 * The bucket is read and written through the bus' reply inbox
 * (kv-over-inbox.ts, decision 0044) with the same semantics as @nats-io/kv's
 * get and create: no Error built per read or write on the message path.
 */
import { createHash } from 'node:crypto';
import type { KvKeyStore } from './kv-over-inbox.ts';
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
const decoder = new TextDecoder();

/** The key's entry; null when it has none (never written, deleted, purged or empty). */
export async function ledgerGet(kv: KvKeyStore, key: string): Promise<LedgerEntry | null> {
  assertLedgerKey(key);
  const e = await kv.get(key);
  if (e === null || e.operation !== 'PUT' || e.value.length === 0) return null;
  return JSON.parse(decoder.decode(e.value)) as LedgerEntry;
}

/**
 * Write a final outcome unless the key already has one; resolves after the KV
 * stream acknowledged the write (durable on a quorum). Returns null when this
 * entry is the one stored (also when it was our own earlier try whose
 * acknowledgement was lost), else the entry another attempt wrote first: the
 * first outcome stays, and the caller knows its delivery was a repeat.
 */
export async function ledgerPut(
  kv: KvKeyStore,
  key: string,
  entry: LedgerEntry,
): Promise<LedgerEntry | null> {
  assertLedgerKey(key);
  try {
    await kv.create(key, encoder.encode(JSON.stringify(entry)));
    return null;
  } catch (err) {
    const existing = await ledgerGet(kv, key);
    if (existing === null) throw err;
    const ours =
      existing.status === entry.status && existing.at === entry.at && existing.reply === entry.reply;
    return ours ? null : existing;
  }
}

/** What keeps a held ledger write going: the part's ack extension and the stage's stop signal. */
export interface LedgerHold {
  working(): void;
  /** Aborted when the stage stops; the write is then tried for `graceMs` more. */
  signal?: AbortSignal;
  /** Called after each failed try (logs, metrics). */
  onRetry?(err: unknown, attempt: number): void;
}

/** First pause after a failed ledger write; doubles up to the max. */
export const LEDGER_RETRY_FIRST_MS = 50;

/**
 * Write until the KV acknowledges it. `put` is one attempt (it waits for the
 * connection itself); a put is idempotent, so a write that was stored but
 * whose acknowledgement was lost is simply written again.
 */
export async function ledgerPutHeld<T>(
  put: () => Promise<T>,
  hold: LedgerHold,
  o: { maxPauseMs: number; graceMs: number },
): Promise<T> {
  let pause = LEDGER_RETRY_FIRST_MS;
  let stoppedAt: number | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      return await put();
    } catch (err) {
      if (err instanceof InvalidLedgerKeyError) throw err;
      hold.onRetry?.(err, attempt);
      if (hold.signal?.aborted) {
        stoppedAt ??= Date.now();
        if (Date.now() - stoppedAt > o.graceMs) throw err;
      }
      hold.working();
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2, o.maxPauseMs);
    }
  }
}
