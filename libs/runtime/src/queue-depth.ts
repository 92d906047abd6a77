/**
 * Queue depth: how many messages wait at each stage (pending + unacknowledged
 * in its durable consumer), exported as the sluice_queue_depth gauge so an
 * operator sees a stalled stage before users notice. Polled, because
 * JetStream 2.9 has no push notification of consumer lag. Each poll also
 * removes acked messages a crashed nats-server left in a work stream
 * (bus acked-leftovers.ts), so the queues drain to zero after a crash.
 */
import type { Bus } from '@sluice/bus';
import type { Logger } from '@sluice/log';
import { consumers } from '@sluice/proto';
import type { Metrics } from '@sluice/telemetry';

export function watchQueueDepth(
  bus: Bus,
  metrics: Metrics,
  log: Logger,
  intervalMs = 5000,
): { stop(): void } {
  const tick = async () => {
    for (const spec of Object.values(consumers)) {
      try {
        await bus.removeAckedLeftovers(spec);
        const lag = await bus.consumerLag(spec);
        metrics.queueDepth.set({ stream: spec.stream }, lag.pending + lag.ackPending);
      } catch (err) {
        log.debug({ err, stream: spec.stream }, 'queue depth unavailable');
      }
    }
  };
  const timer = setInterval(() => void tick(), intervalMs);
  timer.unref();
  void tick();
  return { stop: () => clearInterval(timer) };
}
