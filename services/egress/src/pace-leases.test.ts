/**
 * Shared pacing over a real nats-server's KV (pace-leases.ts, decision 0042):
 * two schedulers, each with its own SharedPaceLeases (as two replicas have),
 * lease slices of one destination's start times; together they never start
 * more than the rate allows, they write the KV once per slice, and when one
 * stops leasing the other gets the whole rate after at most one slice.
 * Likewise a rule's maxConcurrency (concurrency-shares.ts): shares that never
 * add up to more than the maximum, fair shares when both want slots, and the
 * share of a replica that stopped renewing (died) back after its TTL.
 * The end-to-end version (two egress replicas, real SMTP sinks) is in
 * test/e2e/egress-queue.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Bus } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import { type NatsTestServer, startNats, startServiceContext } from '@sluice/test-harness';
import { ConcurrencyShares, type ShareRecord } from './concurrency-shares.ts';
import { type Admission, DestinationScheduler } from './destination-scheduler.ts';
import { LEASE_AHEAD_MS, type PaceRecord, paceKey, SharedPaceLeases, sliceSize } from './pace-leases.ts';

let nats: NatsTestServer;
let bus: Bus;

before(async () => {
  nats = await startNats();
  const config = parseConfig(
    { hostname: 'mx.example.org', domains: { primary: 'example.org' }, nats: { servers: [nats.url] } },
    'pace-test',
  );
  ({ bus } = await startServiceContext(config, 'pace-test'));
});

after(async () => {
  await bus?.close();
  await nats?.stop();
});

const RATE = 600; // one start per 100 ms: a slice is 20 starts (2 s)
const INTERVAL = 60_000 / RATE;

function replica(clock: { now: number }) {
  const leases = new SharedPaceLeases(bus.sharedTable<PaceRecord>('egressDestinations'), () => clock.now);
  const scheduler = new DestinationScheduler({
    limits: () => ({ maxConcurrency: 1000, ratePerMinute: RATE }),
    states: { of: () => undefined },
    pace: leases,
    now: () => clock.now,
    random: () => 0,
  });
  return { leases, scheduler };
}

/**
 * Each replica gets a new part every 20 ms (more than the rate) and presents its postponed
 * parts again when their delay is over, as the deliver stream does; the shared clock steps
 * 10 ms. The start time of every part admitted, per replica.
 */
async function run(
  replicas: Array<ReturnType<typeof replica>>,
  clock: { now: number },
  until: number,
): Promise<number[][]> {
  const starts: number[][] = replicas.map(() => []);
  const waiting = replicas.map(() => new Map<string, number>());
  let n = 0;
  while (clock.now < until) {
    for (const [i, r] of replicas.entries()) {
      if (n % 2 === 0) waiting[i]!.set(`p${n}-${i}`, clock.now);
      for (const [id, due] of waiting[i]!) {
        if (due > clock.now) continue;
        const a: Admission = await r.scheduler.admit('paced.test', id);
        if (a.kind === 'go') {
          a.done();
          starts[i]!.push(clock.now);
          waiting[i]!.delete(id);
        } else waiting[i]!.set(id, clock.now + a.delayMs);
      }
    }
    n++;
    clock.now += 10;
  }
  return starts;
}

describe('shared pacing (KV leases)', () => {
  test('two replicas together stay within the rate; one KV write per slice, not per start', async (t) => {
    const clock = { now: Date.now() };
    const a = replica(clock);
    const b = replica(clock);
    const from = clock.now;
    const [sa, sb] = await run([a, b], clock, from + 10_000);
    const all = [...sa!, ...sb!].sort((x, y) => x - y);
    assert.ok(sa!.length > 0 && sb!.length > 0, `both started some (${sa!.length}, ${sb!.length})`);
    // 10 s at one start per 100 ms: at most 100 (+1 for the start at 0), never the 200 of two unshared replicas.
    assert.ok(all.length <= 101, `${all.length} starts in 10 s at ${RATE}/min`);
    assert.ok(all.length >= 80, `${all.length} starts: the rate is used, not wasted`);
    for (let i = 1; i < all.length; i++) {
      assert.ok(
        all[i]! - all[i - 1]! >= INTERVAL - 50,
        `starts ${i - 1} and ${i} ${all[i]! - all[i - 1]!} ms apart`,
      );
    }
    const writes = a.leases.leases + b.leases.leases;
    assert.ok(
      writes <= Math.ceil(all.length / sliceSize(INTERVAL)) + 2,
      `${writes} KV writes for ${all.length} starts`,
    );
    t.diagnostic(
      `${all.length} starts in 10 s at ${RATE}/min by 2 replicas (${sa!.length} + ${sb!.length}), ${writes} KV writes`,
    );
    const record = await bus.sharedTable<PaceRecord>('egressDestinations').get(paceKey('paced.test'));
    assert.equal(record?.value.destination, 'paced.test');
  });

  test('a replica that stops leasing gives its share back after its lease horizon and one slice', async () => {
    const clock = { now: Date.now() + 60_000 };
    const a = replica(clock);
    const b = replica(clock);
    await run([a, b], clock, clock.now + 3000);
    // b dies holding a slice; a alone gets the whole rate after at most one slice.
    const from = clock.now + LEASE_AHEAD_MS + sliceSize(INTERVAL) * INTERVAL;
    await run([a], clock, from);
    const [alone] = await run([a], clock, from + 5000);
    assert.ok(alone!.length >= 48, `${alone!.length} starts in 5 s alone (the whole rate is 50)`);
  });
});

describe('shared concurrency (KV shares of a rule maxConcurrency)', () => {
  const MAX = 4;
  function holder(name: string, clock: { now: number }) {
    return new ConcurrencyShares({
      table: bus.sharedTable<ShareRecord>('egressDestinations'),
      instance: name,
      now: () => clock.now,
      ttlMs: 3000,
    });
  }

  test('shares never add up to more than the maximum; a wanting replica gets its fair share at the next renewal', async () => {
    const clock = { now: Date.now() };
    const a = holder('a', clock);
    const b = holder('b', clock);
    for (let i = 0; i < 6; i++) await a.grow('busy.test', MAX);
    assert.equal(a.held('busy.test'), MAX, 'a alone takes every slot');
    await b.grow('busy.test', MAX);
    assert.equal(b.held('busy.test'), 0, 'none free for b');
    const writes = b.writes;
    await b.grow('busy.test', MAX);
    assert.equal(b.writes, writes, 'still none free: b asks no more than once a second, writes nothing');
    await a.renew(() => MAX); // a is using all four, but b wants some
    assert.equal(a.held('busy.test'), MAX / 2);
    clock.now += 1000; // b looks again (at most once a second)
    for (let i = 0; i < 4; i++) await b.grow('busy.test', MAX);
    assert.equal(b.held('busy.test'), MAX / 2);
    assert.ok(a.held('busy.test') + b.held('busy.test') <= MAX);
    await a.renew(() => 0); // a idle: its slots go back
    assert.equal(a.held('busy.test'), 0);
    clock.now += 1000;
    await b.grow('busy.test', MAX);
    assert.ok(b.held('busy.test') > MAX / 2, 'b takes what a gave back');
    await Promise.all([a.stop(), b.stop()]);
  });

  test('a replica that stops renewing (died) gives its share back after the TTL', async () => {
    const clock = { now: Date.now() };
    const dead = holder('dead', clock);
    const alive = holder('alive', clock);
    for (let i = 0; i < 4; i++) await dead.grow('gone.test', MAX);
    await alive.grow('gone.test', MAX);
    assert.equal(alive.held('gone.test'), 0);
    clock.now += 3001; // no renewal by `dead`
    for (let i = 0; i < 4; i++) await alive.grow('gone.test', MAX);
    assert.equal(alive.held('gone.test'), MAX);
    await alive.stop();
  });
});
