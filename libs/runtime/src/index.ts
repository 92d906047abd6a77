/** @sluice/runtime: start services with config, bus, telemetry; stop them gracefully. */
export { type MainOptions, runMain } from './main.ts';
export { configArg, loadProcessConfig, type ProcessConfig } from './process-config.ts';
export { PIPELINE_ORDER, type Runtime, type RuntimeOptions, startRuntime } from './runtime.ts';
export type { RunningService, ServiceContext, ServiceDefinition } from './service.ts';
