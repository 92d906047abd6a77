/**
 * @sluice/telemetry: tracing (OpenTelemetry SDK start-up, `tracer`,
 * `runInSpan`), the Prometheus metrics of a process and the HTTP endpoint that
 * serves them with the health checks.
 */

export { type AuthMetrics, authMetrics } from './auth-metrics.ts';
export { type AutoconfigMetrics, autoconfigMetrics } from './autoconfig-metrics.ts';
export {
  type HealthCheck,
  type HealthReport,
  type HttpServer,
  type HttpServerOptions,
  startHttpServer,
} from './http.ts';
export { createMetrics, type Metrics, type NatsOperationTotals } from './metrics.ts';
export { type RoutingSourceMetrics, routingSourceMetrics } from './routing-source-metrics.ts';
export { otlpTracesUrl, startTelemetry, type Telemetry, type TelemetryOptions } from './sdk.ts';
export { type RunInSpanOptions, runInSpan, tracer } from './spans.ts';
export { parseTraceParent, TraceContextPropagator } from './trace-context-propagator.ts';
