import assert from 'node:assert/strict';
import { test } from 'node:test';
import { trace } from '@opentelemetry/api';
import { startTelemetry } from './sdk.ts';
import { runInSpan } from './spans.ts';

test('OTEL_SDK_DISABLED=true registers no tracing at all: spans have no ids, as with the SDK disabled', async () => {
  process.env.OTEL_SDK_DISABLED = 'true'; // the SDK reads it from the process (this file runs alone)
  const telemetry = await startTelemetry({
    serviceName: 'sluice-test',
    instance: 'test-1',
    env: process.env,
  });
  try {
    const valid = await runInSpan('x', {}, (span) => trace.isSpanContextValid(span.spanContext()));
    assert.equal(valid, false);
  } finally {
    await telemetry.shutdown();
  }
});
