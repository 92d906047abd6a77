/**
 * Runs the filter service alone (one service per pod on Kubernetes):
 * `node services/filter/src/main.ts --config /etc/sluice/sluice.yaml`.
 * Wiring only; the service lives in index.ts.
 */
import { configArg, loadProcessConfig, runMain } from '@sluice/runtime';
import { filterService } from './index.ts';

await runMain({
  loadConfig: () => loadProcessConfig(configArg(process.argv.slice(2))),
  services: [filterService],
});
