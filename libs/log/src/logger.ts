/**
 * The process logger: pino writing JSON lines with the service and instance
 * on every line, an ISO-8601 `time`, the level as a word, and the trace_id and
 * span_id of the OpenTelemetry span active when the line is written — so a log
 * line leads to its trace and a trace to its log lines. Nothing here decides
 * what may be logged about mail; that is the Redactor's job.
 */
import { isSpanContextValid, trace } from '@opentelemetry/api';
import { type DestinationStream, type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: LevelWithSilent;
  /** This process' instance name (pod name, host-pid). */
  instance: string;
  /** The service(s) this process runs, e.g. "ingress" or "ingress,filter,resolver". */
  service?: string;
  /** Where lines go (default: stdout). */
  destination?: DestinationStream;
}

/** trace_id and span_id of the active span, or nothing outside a span. */
export function activeTraceFields(): { trace_id?: string; span_id?: string } {
  const ctx = trace.getActiveSpan()?.spanContext();
  if (!ctx || !isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}

export function createLogger(opts: LoggerOptions): Logger {
  const base: Record<string, string> = { instance: opts.instance };
  if (opts.service !== undefined) base.service = opts.service;
  return pino(
    {
      level: opts.level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: activeTraceFields,
    },
    opts.destination,
  );
}
