/**
 * Runs the submission service alone (one service per pod on Kubernetes):
 * `node services/submission/src/main.ts --config /etc/sluice/sluice.yaml`.
 * Wiring only; the service lives in submission-service.ts.
 */
import { configArg, loadProcessConfig, runMain } from '@sluice/runtime';
import { submissionService } from './index.ts';

await runMain({
  loadConfig: () => loadProcessConfig(configArg(process.argv.slice(2))),
  services: [submissionService],
});
