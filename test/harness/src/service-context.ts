/**
 * The ServiceContext a service test starts its service with: a real Bus
 * connected to the test's nats-server (topology declared), a silent logger,
 * fresh metrics and a clear redactor. The bus in the context is the real one
 * with one difference: every timeline event it records is also kept in
 * `events`, so a test can assert on what a service recorded without reading
 * the timeline back from JetStream. The unwrapped bus is returned too, for
 * what the test itself publishes, consumes or inspects.
 */
import { Bus, busConfigFrom } from '@sluice/bus';
import type { SluiceConfig } from '@sluice/config';
import { createLogger, createRedactor, type LoggerOptions } from '@sluice/log';
import type { SluiceEvent } from '@sluice/proto';
import type { ServiceContext } from '@sluice/runtime';
import { createMetrics } from '@sluice/telemetry';

export interface ServiceContextOptions {
  /** The context logger's level (default: silent). */
  logLevel?: LoggerOptions['level'];
  /** Where the context logger writes (default: stdout). */
  logDestination?: LoggerOptions['destination'];
}

export interface TestServiceContext {
  /** The real bus, without the event recording. */
  bus: Bus;
  /** The context to start services with; its bus records into `events`. */
  ctx: ServiceContext;
  /** Every timeline event recorded through `ctx.bus`, in order. */
  events: SluiceEvent[];
  /** Closes (drains) the bus; stop the services first. */
  close(): Promise<void>;
}

export async function startServiceContext(
  config: SluiceConfig,
  instance: string,
  opts: ServiceContextOptions = {},
): Promise<TestServiceContext> {
  const bus = await Bus.connect(busConfigFrom(config, instance));
  try {
    await bus.ensureTopology();
  } catch (err) {
    await bus.close();
    throw err;
  }
  const events: SluiceEvent[] = [];
  const ctx: ServiceContext = {
    config,
    bus: recordingEvents(bus, events),
    log: createLogger({ level: opts.logLevel ?? 'silent', instance, destination: opts.logDestination }),
    metrics: createMetrics(),
    redact: createRedactor({ mode: 'clear' }),
    instance,
  };
  return { bus, ctx, events, close: () => bus.close() };
}

/** The bus, except that recordEvent also pushes each event to `events` before recording it. */
function recordingEvents(bus: Bus, events: SluiceEvent[]): Bus {
  return new Proxy(bus, {
    get(target, prop) {
      if (prop === 'recordEvent') {
        return async (e: SluiceEvent) => {
          events.push(e);
          await target.recordEvent(e);
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}
