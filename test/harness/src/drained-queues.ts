/**
 * "Nothing left that could still be delivered": every work queue consumer of
 * the pipeline (proto's `consumers`) has no pending and no unacknowledged
 * message. Restart and crash tests wait for it before counting deliveries, so
 * a duplicate, if there were one, has had its chance to show up.
 */
import { type ConsumerSpec, consumers } from '@sluice/proto';
import { waitUntil } from './wait-until.ts';

/** What the wait needs of a bus: the backlog of one consumer. */
export interface QueueLagSource {
  consumerLag(spec: ConsumerSpec): Promise<{ pending: number; ackPending: number }>;
}

/** Messages still queued or awaiting an ack, over every pipeline consumer, and where. */
async function queuedMessages(bus: QueueLagSource): Promise<{ left: number; where: string }> {
  let left = 0;
  const where: string[] = [];
  for (const spec of Object.values(consumers)) {
    const lag = await bus.consumerLag(spec);
    left += lag.pending + lag.ackPending;
    if (lag.pending + lag.ackPending > 0)
      where.push(`${spec.stream}: ${lag.pending} pending, ${lag.ackPending} unacked`);
  }
  return { left, where: where.join('; ') };
}

/** Resolve once every pipeline consumer is drained; throw after `timeoutMs` saying how many are left, and where. */
export async function waitForDrainedQueues(bus: QueueLagSource, timeoutMs = 20_000): Promise<void> {
  let last = { left: Number.NaN, where: '' };
  await waitUntil(
    () => `the work queues to drain (${last.left} messages still queued: ${last.where})`,
    async () => {
      last = await queuedMessages(bus);
      return last.left === 0;
    },
    { timeoutMs, intervalMs: 50 },
  );
}
