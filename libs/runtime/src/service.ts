/**
 * What a Sluice service is to the runtime: a name and a start function that
 * receives the shared context (config, bus, logger, metrics) and returns a
 * handle whose stop() stops accepting work, finishes what is in flight and
 * acks nothing unfinished. `sluice run` starts several in one process; a
 * service's own main.ts starts one (one per pod on Kubernetes).
 */
import type { BusClient } from '@sluice/bus';
import type { SluiceConfig } from '@sluice/config';
import type { Logger, Redactor } from '@sluice/log';
import type { StageName } from '@sluice/proto';
import type { Metrics } from '@sluice/telemetry';

export interface ServiceContext {
  config: SluiceConfig;
  bus: BusClient;
  log: Logger;
  metrics: Metrics;
  /** Turns addresses and IPs into what logs and events may show (clear, hashed, dropped). */
  redact: Redactor;
  /** This process' instance name (logs, hops, timeline). */
  instance: string;
  /** The config file this process was started with (absent: not from a file, or the example). */
  configFile?: string;
}

export interface RunningService {
  readonly name: StageName;
  /** Graceful stop: stop accepting, drain in-flight work. */
  stop(): Promise<void>;
  /** Extra readiness information (e.g. bound ports). */
  info?(): Record<string, unknown>;
}

export interface ServiceDefinition {
  readonly name: StageName;
  start(ctx: ServiceContext): Promise<RunningService>;
}
