/**
 * Work-queue leftovers after a crash of nats-server: messages a stage has
 * acked that are still in the stream. On nats-server 2.9 a kill -9 can
 * persist a consumer's ack floor without the work-queue removals that went
 * with those acks; the consumer then never delivers them again (they are
 * below its ack floor), so they sit in the stream for good, holding room the
 * stream's byte and message limits count. Every message at or below the ack
 * floor of the stream's only consumer was processed and acked, so removing
 * them (purge up to the floor) loses nothing; a redelivery is impossible
 * anyway. Reported so an operator sees it happened.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import type { ConsumerSpec } from '@sluice/proto';

/** Remove acked messages left in a work stream; returns how many were removed. */
export async function removeAckedLeftovers(jsm: JetStreamManager, spec: ConsumerSpec): Promise<number> {
  const [si, ci] = await Promise.all([
    jsm.streams.info(spec.stream),
    jsm.consumers.info(spec.stream, spec.durable),
  ]);
  const floor = ci.ack_floor.stream_seq;
  if (si.state.messages === 0 || si.state.first_seq > floor) return 0;
  // Purge keeps `seq` and above: everything removed is at or below the ack floor.
  const r = await jsm.streams.purge(spec.stream, { seq: floor + 1 });
  return r.purged;
}
