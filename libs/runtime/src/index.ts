/** @sluice/runtime: start services with config, bus, telemetry; stop them gracefully. */

export { DataDirLockedError, LOCK_FILE, lockDataDir } from './data-dir-lock.ts';
export { type EmbeddedNats, startEmbeddedNats } from './embedded-nats.ts';
export { type MainOptions, runMain } from './main.ts';
export {
  embeddedDataDir,
  embeddedToken,
  type NatsAccess,
  natsAccessOf,
  redactUrl,
  TOKEN_FILE,
} from './nats-access.ts';
export { configArg, loadProcessConfig, type ProcessConfig } from './process-config.ts';
export { PIPELINE_ORDER, type Runtime, type RuntimeOptions, startRuntime } from './runtime.ts';
export type { RunningService, ServiceContext, ServiceDefinition } from './service.ts';
export {
  reusePortFor,
  startWorkers,
  WORKER_ENV,
  type Workers,
  workerEnv,
  workerIndex,
} from './worker-processes.ts';
