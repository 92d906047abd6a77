/**
 * One socket write per event-loop turn instead of one per microtask.
 *
 * nats.js writes its outbound buffer in a microtask queued by the first
 * command after the last write. A stage handling many messages at once
 * interleaves their async steps, so almost every publish, ack and request
 * ended up in a write() system call of its own: in the foundation benchmark
 * the NATS socket writes were the largest single cost of the Sluice process
 * (docs/decisions/0010). Here the connection's flush is moved to the end of
 * the current event-loop turn (setImmediate): every command of that turn
 * leaves in one write, after at most one turn's delay. A buffer past the
 * client's own pending limit is still written at once, and close() writes
 * what is pending before it closes, so nothing is held back or dropped.
 *
 * The client writes at once when its buffer reaches its pending limit (32
 * KiB): with 5 KB messages that is every few messages, and in the profile
 * half of the NATS writes were those (decision 0039). The limit is raised to
 * COALESCED_BYTES, so a busy turn's commands still leave in one write (or a
 * few) and a buffer never holds more than that before it is written.
 *
 * This reaches into the client's protocol handler (its flushPending and
 * outbound buffer, not part of the typed API); if a client version lacks
 * them, coalescing is left off and the client behaves as it always did.
 */
import type { NatsConnection } from '@nats-io/transport-node';

interface ProtocolInternals {
  flushPending(): void;
  close(err?: Error): Promise<void>;
  outbound: { size(): number };
  pendingLimit: number;
}

/** Bytes of commands a turn may gather before they are written at once (the client's default: 32 KiB). */
export const COALESCED_BYTES = 256 * 1024;

/** Defer the connection's writes to the end of the event-loop turn; false if the client does not allow it. */
export function coalesceWrites(nc: NatsConnection): boolean {
  const protocol = (nc as unknown as { protocol?: Partial<ProtocolInternals> }).protocol;
  if (
    !protocol ||
    typeof protocol.flushPending !== 'function' ||
    typeof protocol.close !== 'function' ||
    typeof protocol.outbound?.size !== 'function' ||
    typeof protocol.pendingLimit !== 'number'
  ) {
    return false;
  }
  const p = protocol as ProtocolInternals;
  p.pendingLimit = Math.max(p.pendingLimit, COALESCED_BYTES);
  const flushNow = p.flushPending.bind(p);
  const close = p.close.bind(p);
  let scheduled = false;
  const flushScheduled = () => {
    scheduled = false;
    flushNow();
  };
  p.flushPending = () => {
    if (p.outbound.size() >= p.pendingLimit) {
      flushNow();
      return;
    }
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushScheduled);
  };
  p.close = (err?: Error) => {
    flushNow();
    return close(err);
  };
  return true;
}
