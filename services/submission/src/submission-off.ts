/**
 * The submission service of a config without a `submission:` section:
 * `sluice run` starts every service, and this one then stays off. Its auth
 * counters are still registered (every outcome from 0, like a process that
 * runs it), so dashboards see one set of series whatever runs where.
 */
import type { RunningService, ServiceContext } from '@sluice/runtime';
import { authMetrics } from '@sluice/telemetry';

export function submissionOff(ctx: ServiceContext): RunningService {
  authMetrics(ctx.metrics.registry);
  ctx.log.info('submission is not configured (no submission: section): not started');
  return { name: 'submission', stop: async () => undefined, info: () => ({ enabled: false }) };
}
