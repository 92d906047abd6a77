/**
 * Probes for service tests: a stand-in for the next stage (it keeps every
 * envelope that reaches a stream, so a test can assert on what a service
 * published) and the count of messages a stage acked (from its metrics), the
 * event a test waits for when a stage has finished with a message.
 */
import type { BusClient } from '@sluice/bus';
import type { ConsumerSpec, Envelope, StageName } from '@sluice/proto';
import type { RunningService } from '@sluice/runtime';
import type { Metrics } from '@sluice/telemetry';

/** Consume `spec` as the next stage would, keeping each envelope in `envelopes`; ack everything. */
export function collectStage(
  bus: BusClient,
  spec: ConsumerSpec,
  concurrency = 4,
): RunningService & { envelopes: Envelope[] } {
  const envelopes: Envelope[] = [];
  const consumer = bus.consumeEnvelopes(spec, { concurrency }, async (d) => {
    envelopes.push(d.envelope);
    return { kind: 'ack' };
  });
  return { name: spec.stage, envelopes, stop: () => consumer.stop() };
}

/** How many messages `stage` has acked so far (sluice_stage_processed_total{outcome="ack"}). */
export async function stageAcks(metrics: Metrics, stage: StageName): Promise<number> {
  const m = await metrics.stageProcessed.get();
  return m.values.find((v) => v.labels.stage === stage && v.labels.outcome === 'ack')?.value ?? 0;
}
