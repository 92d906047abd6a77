import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { buckets, consumers, objectStores, streams } from '@sluice/proto';
import { type NatsTestServer, startNats } from '@sluice/test-harness';
import { Bus } from './bus.ts';
import { defaultBusConfig } from './config.ts';
import {
  BYTES_PER_MESSAGE,
  divideStoreBudget,
  SAFE_DISCARD_NEW_BYTES_VERSION,
  STORE_SHARES,
  versionAtLeast,
} from './store-budget.ts';
import { recordingLog } from './test-fixtures.ts';
import { diffConfig } from './topology.ts';

let nats: NatsTestServer;
before(async () => {
  nats = await startNats();
});
after(async () => {
  await nats?.stop();
});

const DAY = 86_400_000;

test('diffConfig separates changeable from fixed settings', () => {
  const d = diffConfig(
    { subjects: ['a', 'b'], max_age: 5, retention: 'workqueue' },
    { subjects: ['b', 'a'], max_age: 4, retention: 'limits' },
    new Set(['retention']),
  );
  assert.deepEqual(d.changes, { max_age: 5 });
  assert.equal(d.fixed.length, 1);
  assert.match(d.fixed[0]!, /retention is "limits", wanted "workqueue"/);
});

test('ensureTopology declares everything, is idempotent, and is safe concurrently', async () => {
  const cfg = defaultBusConfig({
    servers: [nats.url],
    workMaxAgeMs: 7 * DAY,
    maxBytesPerStream: 64 * 1024 * 1024,
  });
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => Bus.connect(cfg, recordingLog())));
  try {
    // Three processes at once, then once more.
    const reports = await Promise.all([a!.ensureTopology(), b!.ensureTopology(), c!.ensureTopology()]);
    for (const r of reports) assert.deepEqual(r.warnings, []);
    const again = await a!.ensureTopology();
    assert.deepEqual(again, { created: [], updated: [], warnings: [], limits: again.limits });

    const jsm = await jetstreamManager(a!.nc);
    const work = (await jsm.streams.info(streams.resolve.name)).config;
    assert.equal(work.retention, 'workqueue');
    assert.equal(work.discard, 'new');
    assert.equal(work.storage, 'file');
    assert.equal(work.max_age, nanos(7 * DAY));
    assert.equal(work.max_bytes, again.limits.bytesLimitSafe ? 64 * 1024 * 1024 : -1);
    assert.equal(work.duplicate_window, nanos(cfg.duplicateWindowMs));
    const events = (await jsm.streams.info(streams.events.name)).config;
    assert.equal(events.retention, 'limits');
    assert.equal(events.discard, 'old');
    assert.equal(events.max_age, nanos(cfg.eventsRetentionMs));
    const dead = (await jsm.streams.info(streams.dead.name)).config;
    assert.equal(dead.discard, 'new');
    assert.equal(dead.max_age, nanos(30 * DAY));

    for (const spec of Object.values(consumers)) {
      const ci = (await jsm.consumers.info(spec.stream, spec.durable)).config;
      assert.equal(ci.ack_policy, 'explicit');
      assert.equal(ci.max_deliver, -1);
      assert.equal(ci.max_ack_pending, -1);
      assert.equal(ci.filter_subject, spec.filterSubject);
      assert.equal(ci.ack_wait, nanos(cfg.ackWaitMs));
    }
    const kv = (await jsm.streams.info(`KV_${buckets.deliveryLedger}`)).config;
    assert.equal(kv.max_msgs_per_subject, 1);
    assert.equal(kv.max_age, nanos(7 * DAY));
    const obj = (await jsm.streams.info(`OBJ_${objectStores.bodies}`)).config;
    assert.equal(obj.max_age, nanos(7 * DAY));

    // Every object has a byte AND a message limit from its share of the budget (4 GiB: the
    // account states no limit); the work streams take the override.
    const limits = again.limits;
    assert.equal(limits.budgetBytes, 4 * 1024 ** 3);
    assert.equal(limits.deliver.maxBytes, 64 * 1024 * 1024);
    const version = a!.nc.info?.version ?? '';
    assert.equal(limits.bytesLimitSafe, !/^2\.(9|10\.[0-4])\./.test(version), `server ${version}`);
    const declared: Array<[string, { maxBytes: number; maxMsgs: number }]> = [
      [streams.resolve.name, limits.resolve],
      [streams.rewrite.name, limits.rewrite],
      [streams.deliver.name, limits.deliver],
      [streams.events.name, limits.events],
      [streams.dead.name, limits.dead],
      [`KV_${buckets.deliveryLedger}`, limits.ledger],
      [`KV_${buckets.greylist}`, limits.greylist],
      [`KV_${buckets.ingressSessionRate}`, limits.sessionRate],
      [`OBJ_${objectStores.bodies}`, limits.bodies],
    ];
    // The filter's greylist: one value per triplet, gone greylistTtlMs after its last write.
    const grey = (await jsm.streams.info(`KV_${buckets.greylist}`)).config;
    assert.equal(grey.max_msgs_per_subject, 1);
    assert.equal(grey.max_age, nanos(cfg.greylistTtlMs));
    for (const [name, want] of declared) {
      const c = (await jsm.streams.info(name)).config;
      assert.equal(c.max_msgs, want.maxMsgs, `${name} max_msgs`);
      assert.ok(c.max_msgs > 0, `${name} is limited in messages`);
      // Discard-new objects get a byte cap only where the server enforces it without
      // deleting old messages (nats-server#4771); events (discard old) always have one.
      const bytes = c.discard === 'old' || limits.bytesLimitSafe ? want.maxBytes : -1;
      if (name.startsWith('KV_')) assert.equal(c.discard, 'old', 'a full ledger never stops delivery');
      assert.equal(c.max_bytes, bytes, `${name} max_bytes`);
    }
  } finally {
    await Promise.all([a!.close(), b!.close(), c!.close()]);
  }
});

test('ensureTopology updates what it can and warns about what it cannot', async () => {
  const log = recordingLog();
  const bus = await Bus.connect(defaultBusConfig({ servers: [nats.url] }), log);
  try {
    await bus.ensureTopology();
    const jsm = await jetstreamManager(bus.nc);
    // Someone shortened the work stream's retention and the ack wait by hand.
    await jsm.streams.update(streams.deliver.name, {
      max_age: nanos(3_600_000),
      duplicate_window: nanos(60_000),
    });
    await jsm.consumers.update(consumers.egress.stream, consumers.egress.durable, { ack_wait: nanos(5_000) });
    // And the events stream was created as a work queue (cannot be changed in place).
    await jsm.streams.delete(streams.events.name);
    await jsm.streams.add({
      name: streams.events.name,
      subjects: [...streams.events.subjects],
      retention: 'workqueue',
    });

    const report = await bus.ensureTopology();
    assert.ok(report.updated.includes(`stream ${streams.deliver.name}`), JSON.stringify(report));
    assert.ok(report.updated.includes(`consumer ${consumers.egress.stream}/${consumers.egress.durable}`));
    assert.equal(
      (await jsm.streams.info(streams.deliver.name)).config.max_age,
      nanos(bus.config.workMaxAgeMs),
    );
    assert.equal(
      (await jsm.consumers.info(consumers.egress.stream, consumers.egress.durable)).config.ack_wait,
      nanos(bus.config.ackWaitMs),
    );
    assert.equal(report.warnings.length, 1);
    assert.match(report.warnings[0]!, /SLUICE_EVENTS: retention is "workqueue", wanted "limits"/);
    assert.ok(log.lines.some((l) => l.level === 'warn' && /SLUICE_EVENTS/.test(l.msg ?? '')));
  } finally {
    await bus.close();
  }
});

test('versionAtLeast: byte caps on discard-new streams only from nats-server 2.10.5', () => {
  assert.equal(versionAtLeast('2.9.10', SAFE_DISCARD_NEW_BYTES_VERSION), false);
  assert.equal(versionAtLeast('2.10.4', SAFE_DISCARD_NEW_BYTES_VERSION), false);
  assert.equal(versionAtLeast('2.10.5', SAFE_DISCARD_NEW_BYTES_VERSION), true);
  assert.equal(versionAtLeast('2.11.0-beta.1', SAFE_DISCARD_NEW_BYTES_VERSION), true);
  assert.equal(versionAtLeast(undefined, SAFE_DISCARD_NEW_BYTES_VERSION), false);
});

test('divideStoreBudget: shares of the budget, bytes and messages, a 10% reserve left', () => {
  const limits = divideStoreBudget(10 * 1024 ** 3);
  const objects = Object.keys(STORE_SHARES) as Array<keyof typeof STORE_SHARES>;
  const total = objects.reduce((n, k) => n + limits[k].maxBytes, 0);
  assert.ok(total <= 0.9 * limits.budgetBytes + objects.length, `${total} within 90% of the budget`);
  for (const k of objects) {
    assert.equal(limits[k].maxMsgs, Math.floor(limits[k].maxBytes / BYTES_PER_MESSAGE), k);
  }
  assert.ok(limits.ledger.maxBytes >= 0.08 * limits.budgetBytes - 1, 'the ledger has its own share');
  // An explicit per-stream cap replaces the work streams' shares only.
  const capped = divideStoreBudget(10 * 1024 ** 3, 1_000_000);
  assert.equal(capped.resolve.maxBytes, 1_000_000);
  assert.equal(capped.ledger.maxBytes, limits.ledger.maxBytes);
});
