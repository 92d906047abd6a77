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
 * One SDK per process: a second call joins the running one.
 */
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  NoopSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

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

/** The SDK of this process and how many startTelemetry callers still use it. */
let running: { sdk: NodeSDK; processors: SpanProcessor[]; users: number } | undefined;

/** The OTLP traces URL for a configured base URL. */
export function otlpTracesUrl(endpoint: string): string {
  const trimmed = endpoint.replace(/\/+$/, '');
  return trimmed.endsWith('/v1/traces') ? trimmed : `${trimmed}/v1/traces`;
}

/** The exporter to use, if any: the configured endpoint first, then the OTEL_* variables. */
function traceExporter(opts: TelemetryOptions, env: NodeJS.ProcessEnv): SpanExporter | undefined {
  if (env.OTEL_TRACES_EXPORTER?.trim() === 'none') return undefined;
  if (opts.otlpEndpoint) return new OTLPTraceExporter({ url: otlpTracesUrl(opts.otlpEndpoint) });
  // The exporter reads these variables itself (and OTEL_EXPORTER_OTLP_HEADERS, …).
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT)
    return new OTLPTraceExporter();
  return undefined;
}

/**
 * Start tracing, or join the tracing already running in this process (several
 * runtimes in one test process share it; the first options win). Each caller
 * gets its own handle; the SDK stops when the last handle is shut down.
 */
export async function startTelemetry(opts: TelemetryOptions): Promise<Telemetry> {
  if (!running) running = { ...createSdk(opts), users: 0 };
  const current = running;
  current.users++;
  let stopped = false;
  return {
    forceFlush: async () => {
      await Promise.all(current.processors.map((p) => p.forceFlush()));
    },
    shutdown: async () => {
      if (stopped) return;
      stopped = true;
      if (--current.users > 0) return;
      if (running === current) running = undefined;
      await current.sdk.shutdown();
      // Unregister the globals so that a later startTelemetry can register new ones.
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

function createSdk(opts: TelemetryOptions): { sdk: NodeSDK; processors: SpanProcessor[] } {
  const env = opts.env ?? process.env;
  const processors: SpanProcessor[] = [...(opts.spanProcessors ?? [])];
  const exporter = traceExporter(opts, env);
  if (exporter) {
    const delay = Number(env.OTEL_BSP_SCHEDULE_DELAY);
    processors.push(new BatchSpanProcessor({ exporter, scheduledDelayMillis: delay > 0 ? delay : 1000 }));
  }
  // Without any processor the SDK would install no tracer provider, and there would be no trace ids.
  if (processors.length === 0) processors.push(new NoopSpanProcessor());

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
  return { sdk, processors };
}
