import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { TracerProvider } from '@opentelemetry/sdk-trace';
import { createLogger } from './logger.ts';

const provider = new TracerProvider();
const contextManager = new AsyncLocalStorageContextManager();

before(() => {
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(provider);
});
after(async () => {
  await provider.shutdown();
  trace.disable();
  context.disable();
});

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  return { lines, destination: { write: (s: string) => void lines.push(JSON.parse(s)) } };
}

test('lines are JSON with service, instance, ISO time and the level as a word', () => {
  const out = capture();
  const log = createLogger({
    level: 'info',
    instance: 'mx-1',
    service: 'ingress',
    destination: out.destination,
  });
  log.info({ queueId: 'Q1' }, 'accepted');
  log.debug('not written at info');
  assert.equal(out.lines.length, 1);
  const line = out.lines[0]!;
  assert.equal(line.service, 'ingress');
  assert.equal(line.instance, 'mx-1');
  assert.equal(line.level, 'info');
  assert.equal(line.msg, 'accepted');
  assert.equal(line.queueId, 'Q1');
  assert.ok(
    !Number.isNaN(Date.parse(String(line.time))) && String(line.time).endsWith('Z'),
    String(line.time),
  );
  assert.equal(line.trace_id, undefined, 'no trace id outside a span');
});

test('every line inside a span carries its trace_id and span_id, also after an await', async () => {
  const out = capture();
  const log = createLogger({ level: 'debug', instance: 'mx-1', destination: out.destination }).child({
    stage: 'x',
  });
  const tracer = trace.getTracer('test');
  const ids = await tracer.startActiveSpan('outer', async (outer) => {
    log.info('in outer');
    const inner = await tracer.startActiveSpan('inner', async (span) => {
      await new Promise((resolve) => setImmediate(resolve));
      log.debug('in inner, after an await');
      span.end();
      return span.spanContext();
    });
    log.info('back in outer');
    outer.end();
    return { outer: outer.spanContext(), inner };
  });
  log.info('after both');
  assert.equal(out.lines.length, 4);
  const [a, b, c, d] = out.lines;
  assert.deepEqual([a!.trace_id, a!.span_id], [ids.outer.traceId, ids.outer.spanId]);
  assert.deepEqual([b!.trace_id, b!.span_id], [ids.inner.traceId, ids.inner.spanId]);
  assert.equal(ids.inner.traceId, ids.outer.traceId);
  assert.deepEqual([c!.trace_id, c!.span_id], [ids.outer.traceId, ids.outer.spanId]);
  assert.equal(d!.trace_id, undefined);
  assert.match(String(a!.trace_id), /^[0-9a-f]{32}$/);
  assert.match(String(a!.span_id), /^[0-9a-f]{16}$/);
  assert.equal(a!.service, undefined, 'no service field when none is given');
});
