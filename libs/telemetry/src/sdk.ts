/**
 * Starts OpenTelemetry tracing for the process: a real tracer provider (so
 * spans have trace ids that reach log lines and travel to other services in
 * W3C Trace Context `traceparent` headers, https://www.w3.org/TR/trace-context/)
 * with the resource attributes service.name and service.instance.id, exporting
 * over OTLP/HTTP (JSON) when an endpoint is configured — telemetry.otlpEndpoint,
 * or the standard OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT.
 * No auto-instrumentation: start-up stays fast and the spans are the ones
 * Sluice makes on purpose. OTEL_RESOURCE_ATTRIBUTES (e.g. k8s.pod.name) is
 * honoured; OTEL_TRACES_EXPORTER=none turns the export off.
 *
 * With nothing to take the spans (no endpoint, no span processor) the SDK is
 * not loaded: spans get ids only (id-only-tracing.ts, decision 0036).
 *
 * One SDK per process: a second call joins the running one.
 */
import type { SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import { startIdOnlyTracing } from './id-only-tracing.ts';

export interface TelemetryOptions {
  /** service.name of this process' spans. */
  serviceName: string;
  /** service.instance.id: the instance name (pod, host-pid). */
  instance: string;
  /** OTLP/HTTP base URL (http://collector:4318); /v1/traces is appended unless already there. */
  otlpEndpoint?: string;
  /** More span processors (tests: an in-memory exporter). */
  spanProcessors?: SpanProcessor[];
  /** Environment for the OTEL_* variables (default: process.env). */
  env?: NodeJS.ProcessEnv;
}

export interface Telemetry {
  /** Export what is buffered now (before a test looks at the collector, before exit). */
  forceFlush(): Promise<void>;
  /** Flush and stop (when no other handle uses it); telemetry may be started again afterwards. */
  shutdown(): Promise<void>;
}

/** service.instance.id (OpenTelemetry resource semantic conventions; not yet in the stable export). */
const ATTR_SERVICE_INSTANCE_ID = 'service.instance.id';

/** What traces this process: the SDK, or ids only. */
interface Tracing {
  processors: SpanProcessor[];
  shutdown(): Promise<void>;
}

/** The tracing of this process and how many startTelemetry callers still use it. */
let running: { tracing: Promise<Tracing>; users: number } | undefined;

/** The OTLP traces URL for a configured base URL. */
export function otlpTracesUrl(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, '');
  return trimmed.endsWith('/v1/traces') ? trimmed : `${trimmed}/v1/traces`;
}

/** The OTLP URL to export to: undefined for none, '' for the one the OTEL_* variables name. */
function exportUrl(opts: TelemetryOptions, env: NodeJS.ProcessEnv): string | undefined {
  if (env.OTEL_TRACES_EXPORTER?.trim() === 'none') return undefined;
  if (opts.otlpEndpoint) return otlpTracesUrl(opts.otlpEndpoint);
  // The exporter reads these variables itself (and OTEL_EXPORTER_OTLP_HEADERS, …).
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT) return '';
  return undefined;
}

/**
 * Start tracing, or join the tracing already running in this process (several
 * runtimes in one test process share it; the first options win). Each caller
 * gets its own handle; the SDK stops when the last handle is shut down.
 */
export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  if (!running) running = { tracing: startTracing(opts), users: 0 };
  const current = running;
  current.users++;
  const tracing = await current.tracing;
  let stopped = false;
  return {
    forceFlush: async () => {
      await Promise.all(tracing.processors.map((p) => p.forceFlush()));
    },
    shutdown: async () => {
      if (stopped) return;
      stopped = true;
      if (--current.users > 0) return;
      if (running === current) running = undefined;
      // Also unregisters the globals, so that a later startTelemetry can register new ones.
      await tracing.shutdown();
    },
  };
}

/**
 * The SDK when something takes the spans (an exporter, a processor); otherwise
 * ids only (id-only-tracing.ts), and the SDK's modules are never loaded.
 */
async function startTracing(opts: TelemetryOptions): Promise<Tracing> {
  const env = opts.env ?? process.env;
  const url = exportUrl(opts, env);
  // OTEL_SDK_DISABLED=true: the SDK registers nothing (no ids either), as before.
  const sdkDisabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true';
  if (url === undefined && !opts.spanProcessors?.length && !sdkDisabled) {
    const idOnly = startIdOnlyTracing();
    return { processors: [], shutdown: async () => idOnly.shutdown() };
  }
  return createSdk(opts, env, url);
}

async function createSdk(
  opts: TelemetryOptions,
  env: NodeJS.ProcessEnv,
  url: string | undefined,
): Promise<Tracing> {
  const [
    { context, propagation, trace },
    { W3CTraceContextPropagator },
    { OTLPTraceExporter },
    { defaultResource, envDetector, resourceFromAttributes },
    { NodeSDK },
    { BatchSpanProcessor },
    { ATTR_SERVICE_NAME },
  ] = await Promise.all([
    import('@opentelemetry/api'),
    import('@opentelemetry/core'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/sdk-trace'),
    import('@opentelemetry/semantic-conventions'),
  ]);
  const processors: SpanProcessor[] = [...(opts.spanProcessors ?? [])];
  const exporter: SpanExporter | undefined =
    url === undefined ? undefined : url ? new OTLPTraceExporter({ url }) : new OTLPTraceExporter();
  if (exporter) {
    const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
    processors.push(new BatchSpanProcessor({ exporter, scheduledDelayMillis: delay > 0 ? delay : 1000 }));
  }
  const sdk = new NodeSDK({
    serviceName: opts.serviceName,
    resource: defaultResource().merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: opts.serviceName,
        [ATTR_SERVICE_INSTANCE_ID]: opts.instance,
      }),
    ),
    resourceDetectors: [envDetector],
    textMapPropagator: new W3CTraceContextPropagator(),
    spanProcessors: processors,
    instrumentations: [],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return {
    processors,
    shutdown: async () => {
      await sdk.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
