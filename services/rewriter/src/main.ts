/**
 * Runs the rewriter service alone (one service per pod on Kubernetes):
 * `node services/rewriter/src/main.ts --config /etc/sluice/sluice.yaml`.
 * Wiring only; the service lives in index.ts.
 */
import { configArg, loadProcessConfig, runMain } from '@sluice/runtime';
import { rewriterService } from './index.ts';

await runMain({
  loadConfig: () => loadProcessConfig(configArg(process.argv.slice(2))),
  services: [rewriterService],
});
