/**
 * Tracing when nothing exports spans (no OTLP endpoint, no span processor):
 * spans still get ids, so log lines carry trace_id/span_id and messages carry
 * a W3C `traceparent` (https://www.w3.org/TR/trace-context/) to the next
 * service, but nothing is recorded — no span objects, attributes, events or
 * end-of-span processing, and the OpenTelemetry SDK (tens of MB of modules
 * with its exporters) is not loaded at all (decision 0036).
 *
 * The ids and flags are what the SDK's default sampler (parent-based,
 * always on) gives: a child span keeps its parent's trace id, flags and
 * trace state; a root span gets a new trace id and is marked sampled.
 *
 * The context manager is AsyncLocalStorage, as the SDK's own
 * (@opentelemetry/context-async-hooks), without binding event emitters, which
 * Sluice does not do.
 */

import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import {
  type Context,
  type ContextManager,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  type SpanContext,
  type SpanOptions,
  TraceFlags,
  type Tracer,
  type TracerProvider,
  trace,
} from '@opentelemetry/api';
import { TraceContextPropagator } from './trace-context-propagator.ts';

/** Random bytes drawn in blocks: one system call per 512 span ids, not one per id. */
const pool = Buffer.alloc(4096);
let poolOffset = pool.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > pool.length) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    const start = poolOffset;
    poolOffset += bytes;
    // All zeros is the invalid id (W3C Trace Context §3.2.2.3, §3.2.2.4): draw again.
    for (let i = start; i < start + bytes; i++)
      if (pool[i] !== 0) return pool.toString('hex', start, start + bytes);
  }
}

/** Non-recording spans with real ids. */
export class IdOnlyTracer implements Tracer {
  startSpan(_name: string, options?: SpanOptions, ctx: Context = context.active()): Span {
    const parent = options?.root ? undefined : trace.getSpanContext(ctx);
    const spanContext: SpanContext =
      parent && trace.isSpanContextValid(parent)
        ? {
            traceId: parent.traceId,
            spanId: randomHex(8),
            traceFlags: parent.traceFlags,
            ...(parent.traceState ? { traceState: parent.traceState } : {}),
          }
        : { traceId: randomHex(16), spanId: randomHex(8), traceFlags: TraceFlags.SAMPLED };
    return trace.wrapSpanContext(spanContext);
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...rest: unknown[]): ReturnType<F> {
    // (name, fn) | (name, options, fn) | (name, options, context, fn), as the API defines it.
    const fn = rest.at(-1) as F;
    const options = rest.length >= 2 ? (rest[0] as SpanOptions | undefined) : undefined;
    const parent =
      rest.length >= 3 ? ((rest[1] as Context | undefined) ?? context.active()) : context.active();
    const span = this.startSpan(name, options, parent);
    return context.with(trace.setSpan(parent, span), fn as (s: Span) => ReturnType<F>, undefined, span);
  }
}

class IdOnlyTracerProvider implements TracerProvider {
  readonly #tracer = new IdOnlyTracer();
  getTracer(): Tracer {
    return this.#tracer;
  }
}

class AsyncLocalStorageContext implements ContextManager {
  #storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.#storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    ctx: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#storage.run(ctx, thisArg == null ? fn : fn.bind(thisArg), ...args);
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const manager = this;
    return function (this: unknown, ...args: unknown[]) {
      return manager.with(ctx, () => (target as (...a: unknown[]) => unknown).apply(this, args));
    } as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#storage.disable();
    return this;
  }
}

/** Register the id-only tracer, the context manager and the W3C propagator as the process' globals. */
export function startIdOnlyTracing(): { shutdown(): void } {
  const manager = new AsyncLocalStorageContext();
  context.setGlobalContextManager(manager);
  propagation.setGlobalPropagator(new TraceContextPropagator());
  trace.setGlobalTracerProvider(new IdOnlyTracerProvider());
  return {
    shutdown() {
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
