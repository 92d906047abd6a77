/**
 * The Sluice process runtime: everything between "a config" and "services
 * running", shared by `sluice run` (all services in one process, an embedded
 * nats-server when no NATS URL is configured) and each service's own main.ts
 * (one service per pod on Kubernetes).
 *
 * Start order: telemetry (so the first log line already has a tracer), logger,
 * embedded NATS if needed, bus connection, topology (idempotent), the HTTP
 * endpoint (/metrics, /healthz, /readyz), then the services in pipeline order
 * from the last stage to the first, so that a consumer exists before anything
 * is published to it and the ingress opens its port last. Each service gets
 * the bus bound to its stage (bus.forStage), so every NATS operation is
 * counted per stage (sluice_nats_operations_total, docs/decisions/0010).
 *
 * Stop order is the reverse: the ingress stops accepting and finishes its
 * sessions first, then the filter, resolver, rewriter and egress finish what
 * they hold (nothing unfinished is acked: it is redelivered after a restart),
 * then the bus drains, telemetry flushes, and the embedded server stops —
 * last, so that the acks of the work finished during the stop still reach it
 * (embedded-nats.ts: its own process group, a lock on its data dir, a
 * generated token, restarts when it dies).
 *
 * Liveness (/healthz) fails once the bus has been disconnected for longer
 * than http.healthBusGrace; readiness (/readyz) as soon as it is.
 */

import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Bus, busConfigFrom, embeddedStoreBudget } from '@sluice/bus';
import type { SluiceConfig } from '@sluice/config';
import { createLogger, createRedactor, type Logger } from '@sluice/log';
import type { StageName } from '@sluice/proto';
import { createMetrics, type Metrics, startHttpServer, startTelemetry } from '@sluice/telemetry';
import { type EmbeddedNats, startEmbeddedNats } from './embedded-nats.ts';
import { embeddedDataDir, redactUrl } from './nats-access.ts';
import { watchQueueDepth } from './queue-depth.ts';
import type { RunningService, ServiceDefinition } from './service.ts';

/** Pipeline order: the order in which a message meets the stages. */
export const PIPELINE_ORDER: StageName[] = [
  'ingress',
  'submission',
  'filter',
  'resolver',
  'rewriter',
  'egress',
];

export interface RuntimeOptions {
  config: SluiceConfig;
  services: ServiceDefinition[];
  /** Where pino writes (default stdout). Tests pass a stream. */
  logDestination?: NodeJS.WritableStream;
  /** Base directory for relative paths in the config (the config file's directory). */
  baseDir?: string;
  /** The config file the process runs with, for services that reload it (the resolver's routing). */
  configFile?: string;
  /**
   * Sluice cannot go on (the embedded nats-server keeps dying). runMain stops and exits
   * non-zero; the default only logs.
   */
  onFatal?: (err: Error) => void;
}

export interface Runtime {
  config: SluiceConfig;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
  instance: string;
  natsUrl: string;
  /** The embedded nats-server, when this process runs one. */
  embedded?: EmbeddedNats;
  httpPort?: number;
  services: RunningService[];
  service(name: StageName): RunningService | undefined;
  stop(): Promise<void>;
}

export async function startRuntime(opts: RuntimeOptions): Promise<Runtime> {
  const { config } = opts;
  const instance = config.instance ?? `${hostname()}-${process.pid}`;
  const names = opts.services.map((s) => s.name);
  const telemetry = await startTelemetry({
    serviceName: config.telemetry.serviceName,
    instance,
    otlpEndpoint: config.telemetry.otlpEndpoint,
  });
  // The process logger names the instance; each service's child logger adds `service`
  // (one key per line, never two: a process may run several services).
  const log = createLogger({
    level: config.log.level,
    instance,
    destination: opts.logDestination as never,
  });
  const cleanups: Array<() => Promise<void>> = [() => telemetry.shutdown()];
  const undo = async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {});
  };
  try {
    let servers = config.nats.servers;
    let token = config.nats.token;
    let embedded: EmbeddedNats | undefined;
    let store: { dir: string; budget: number } | undefined;
    if (servers.length === 0) {
      const e = config.nats.embedded;
      // The store budget (docs/decisions/0008) caps the server itself: max_file_store = budget.
      const dataDir = embeddedDataDir(config, opts.baseDir);
      await mkdir(dataDir, { recursive: true });
      const budget =
        config.bus.store.budget || (await embeddedStoreBudget(dataDir, config.bus.store.freeSpaceFraction));
      store = { dir: dataDir, budget };
      log.info({ storeDir: dataDir, budgetBytes: budget }, 'JetStream store budget');
      embedded = await startEmbeddedNats({
        settings: e,
        dataDir,
        maxFileStoreBytes: budget,
        log,
        onGiveUp: (err) => {
          log.fatal({ err }, 'giving up on the embedded nats-server');
          (opts.onFatal ?? (() => {}))(err);
        },
      });
      const handle = embedded;
      token = embedded.token;
      cleanups.push(() => handle.stop());
      servers = [embedded.url];
      log.info(
        { url: embedded.url, storeDir: e.dataDir, syncAlways: embedded.syncAlways },
        'embedded nats-server started',
      );
      if (e.syncAlways && !embedded.syncAlways) {
        log.warn(
          'this nats-server does not support sync_interval: always; JetStream fsyncs on its default interval, ' +
            'so acknowledged messages can be lost if the host loses power before the next sync (docs/decisions/0001)',
        );
      }
    }
    const busConfig = busConfigFrom({ ...config, nats: { ...config.nats, servers, token } }, instance);
    if (store) {
      busConfig.storeBudgetBytes = store.budget;
      busConfig.storeDir = store.dir;
    }
    const bus = await Bus.connect(busConfig, log);
    cleanups.push(() => bus.close());
    await bus.ensureTopology();

    const metrics = createMetrics();
    metrics.observeNatsOperations(() => bus.operations.snapshot());
    const redact = createRedactor({ mode: config.log.addresses, key: config.log.hashKey });
    const ordered = [...opts.services].sort(
      (a, b) => PIPELINE_ORDER.indexOf(b.name) - PIPELINE_ORDER.indexOf(a.name),
    );
    const running: RunningService[] = [];
    let stopping = false;
    const stopServices = async () => {
      // Reverse of start: the first stage of the pipeline stops first.
      for (const svc of [...running].reverse()) {
        const t0 = Date.now();
        await svc
          .stop()
          .catch((err: unknown) => log.error({ err, service: svc.name }, 'service stop failed'));
        log.info({ service: svc.name, ms: Date.now() - t0 }, 'service stopped');
      }
    };
    cleanups.push(stopServices);
    for (const def of ordered) {
      const svcLog = log.child({ service: def.name });
      running.push(
        await def.start({
          config,
          bus: bus.forStage(def.name),
          log: svcLog,
          metrics,
          redact,
          instance,
          configFile: opts.configFile,
        }),
      );
      svcLog.info({ ...(running.at(-1)?.info?.() ?? {}) }, 'service started');
    }
    const depth = watchQueueDepth(bus, metrics, log);
    cleanups.push(async () => depth.stop());

    let httpPort: number | undefined;
    if (config.http.listen) {
      const http = await startHttpServer({
        host: config.http.listen.host,
        port: config.http.listen.port,
        metrics,
        health: async () => {
          const downMs = bus.connection.downForMs();
          const ok = downMs <= config.http.healthBusGrace * 1000;
          return { ok, checks: { process: true, nats: ok || `down for ${Math.round(downMs / 1000)} s` } };
        },
        ready: async () => {
          const connected = bus.isConnected();
          return { ok: connected && !stopping, checks: { nats: connected, stopping } };
        },
      });
      httpPort = http.port;
      cleanups.push(() => http.close());
    }
    log.info({ services: names, nats: servers.map(redactUrl), http: httpPort }, 'sluice is running');

    return {
      config,
      bus,
      log,
      metrics,
      instance,
      natsUrl: servers[0]!,
      embedded,
      httpPort,
      services: running,
      service: (name) => running.find((s) => s.name === name),
      async stop() {
        if (stopping) return;
        stopping = true;
        log.info('stopping: draining services');
        await undo();
      },
    };
  } catch (err) {
    await undo();
    throw err;
  }
}
