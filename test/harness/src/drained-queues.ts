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

/** Messages still queued or awaiting an ack, over every pipeline consumer. */
async function queuedMessages(bus: QueueLagSource): Promise<number> {
  let left = 0;
  for (const spec of Object.values(consumers)) {
    const lag = await bus.consumerLag(spec);
    left += lag.pending + lag.ackPending;
  }
  return left;
}

/** Resolve once every pipeline consumer is drained; throw after `timeoutMs` saying how many are left. */
export async function waitForDrainedQueues(bus: QueueLagSource, timeoutMs = 20_000): Promise<void> {
  let left = Number.NaN;
  await waitUntil(
    () => `the work queues to drain (${left} messages still queued)`,
    async () => {
      left = await queuedMessages(bus);
      return left === 0;
    },
    { timeoutMs, intervalMs: 50 },
  );
}
