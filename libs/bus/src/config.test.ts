import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '@sluice/config';
import { busConfigFrom, DEAD_LETTER_RETENTION_MS } from './config.ts';

test('busConfigFrom: defaults in milliseconds, embedded server when no servers are listed', () => {
  const config = parseConfig({ domains: { primary: 'example.org' } }, 'test', { env: {} });
  const bus = busConfigFrom(config, 'sluice-egress@host');
  assert.equal(bus.name, 'sluice-egress@host');
  assert.deepEqual(bus.servers, ['nats://127.0.0.1:4222']);
  assert.equal(bus.replicas, 1);
  assert.equal(bus.workMaxAgeMs, (5 + 2) * 86_400_000, 'queueLifetime + retentionMargin');
  assert.equal(bus.duplicateWindowMs, 1_200_000);
  assert.equal(bus.ackWaitMs, 60_000);
  assert.equal(bus.publishTimeoutMs, 10_000);
  assert.equal(bus.maxDeliver, 50);
  assert.equal(bus.maxBytesPerStream, -1);
  assert.equal(bus.storeBudgetBytes, 0, 'automatic store budget');
  assert.equal(bus.storeFreeSpaceFraction, 0.5);
  assert.equal(bus.storeMinFreeBytes, 64 * 1024 * 1024);
  assert.equal(bus.eventsRetentionMs, 7 * 86_400_000);
  assert.equal(bus.deadRetentionMs, DEAD_LETTER_RETENTION_MS);
});

test('busConfigFrom: cluster servers, credentials and limits are passed through', () => {
  const config = parseConfig(
    {
      domains: { primary: 'example.org' },
      nats: { servers: ['nats://a:4222', 'nats://b:4222'], user: 'sluice', password: 's3cret', replicas: 3 },
      bus: { queueLifetime: 3600, retentionMargin: 600, maxBytesPerStream: 1_000_000, ackWait: 5 },
    },
    'test',
    { env: {} },
  );
  const bus = busConfigFrom(config, 'x');
  assert.deepEqual(bus.servers, ['nats://a:4222', 'nats://b:4222']);
  assert.equal(bus.user, 'sluice');
  assert.equal(bus.password, 's3cret');
  assert.equal(bus.replicas, 3);
  assert.equal(bus.workMaxAgeMs, 4_200_000);
  assert.equal(bus.maxBytesPerStream, 1_000_000);
  assert.equal(bus.ackWaitMs, 5000);
});

test('bus.store: a budget and guard threshold are passed through; a bad fraction fails naming the key', () => {
  const config = parseConfig(
    { domains: { primary: 'example.org' }, bus: { store: { budget: 10_000_000, minFreeBytes: 1000 } } },
    'test',
    { env: {} },
  );
  const bus = busConfigFrom(config, 'x');
  assert.equal(bus.storeBudgetBytes, 10_000_000);
  assert.equal(bus.storeMinFreeBytes, 1000);
  assert.throws(
    () =>
      parseConfig(
        { domains: { primary: 'example.org' }, bus: { store: { freeSpaceFraction: 1.5 } } },
        'test',
        {
          env: {},
        },
      ),
    /bus\.store\.freeSpaceFraction/,
  );
  assert.throws(
    () =>
      parseConfig({ domains: { primary: 'example.org' }, bus: { store: { budget: 1000 } } }, 'test', {
        env: {},
      }),
    /bus\.store\.budget: .*minFreeBytes/,
  );
});
