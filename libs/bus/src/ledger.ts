/**
 * The egress' delivery ledger in JetStream KV: one JSON entry per (part,
 * recipient) that was delivered or failed for good, written (PubAck awaited)
 * before the envelope is acked, so a redelivered envelope never delivers to
 * that recipient twice. KV keys allow only [-/_=.a-zA-Z0-9] (and no leading
 * or trailing dot), so callers must not put raw addresses in keys:
 * `ledgerKey` hashes the recipient.
 *
 * After a remote 250 the ledger write is what stands between the recipient
 * and a second copy, so `ledgerPutHeld` never gives up on a write the way a
 * publish does: it waits out reconnects and full storage (the ledger bucket
 * has its own reserved share of the store, store-budget.ts) and extends the
 * part's ack deadline while it waits, so JetStream does not hand the part to
 * another attempt meanwhile. Only a stopping stage ends the wait, after a
 * grace period (the part is then redelivered: the one duplicate left).
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

/**
 * Write a final outcome unless the key already has one; resolves after the KV
 * stream acknowledged the write (durable on a quorum). Returns null when this
 * entry is the one stored (also when it was our own earlier try whose
 * acknowledgement was lost), else the entry another attempt wrote first: the
 * first outcome stays, and the caller knows its delivery was a repeat.
 */
export async function ledgerPut(kv: KV, key: string, entry: LedgerEntry): Promise<LedgerEntry | null> {
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
