/**
 * The delivery queue's admission rules without a network: per-destination
 * concurrency, paced starts with reservations, a backoff and the single probe
 * after it, and how destination rules match names. The end-to-end behaviour
 * (real sinks, a black hole, replicas) is in test/e2e/egress-queue.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseConfig } from '@sluice/config';
import type { Route } from '@sluice/proto';
import { type Admission, DestinationScheduler } from './destination-scheduler.ts';
import type { DestinationState } from './destination-states.ts';
import { destinationKey, destinationOf, limitsFor, ruleMatches } from './queue-destination.ts';
import { destinationFailure } from './queued-delivery.ts';

function bed(
  limits: { maxConcurrency: number; ratePerMinute?: number },
  state?: DestinationState,
  slotWaitMs = 20,
) {
  let now = 1_000_000;
  const scheduler = new DestinationScheduler({
    limits: () => limits,
    states: { of: () => state },
    now: () => now,
    random: () => 0,
    slotWaitMs,
  });
  return { scheduler, advance: (ms: number) => (now += ms), at: () => now };
}

const go = (a: Admission) => {
  assert.equal(a.kind, 'go', a.kind === 'wait' ? a.reason : '');
  return a as Extract<Admission, { kind: 'go' }>;
};
const wait = (a: Admission) => {
  assert.equal(a.kind, 'wait');
  return a as Extract<Admission, { kind: 'wait' }>;
};

describe('destination scheduler', () => {
  test('at most maxConcurrency attempts in flight per destination; others are not affected', async () => {
    const { scheduler } = bed({ maxConcurrency: 2 });
    const a = go(await scheduler.admit('dead.test', 'p1'));
    go(await scheduler.admit('dead.test', 'p2'));
    const third = wait(await scheduler.admit('dead.test', 'p3'));
    assert.match(third.reason, /2 attempt\(s\) in flight \(limit 2\)/);
    assert.ok(third.delayMs >= 500 && third.delayMs <= 1500);
    go(await scheduler.admit('healthy.test', 'p4'));
    assert.ok(
      wait(await scheduler.admit('dead.test', 'p3b')).delayMs > third.delayMs,
      'waiters are spread out, not all told the same second',
    );
    a.done();
    a.done(); // idempotent
    go(await scheduler.admit('dead.test', 'p3'));
    wait(await scheduler.admit('dead.test', 'p5'));
  });

  test('a busy destination that is moving: the next part waits in process and gets the slot handed over', async () => {
    const { scheduler, advance } = bed({ maxConcurrency: 2 }, undefined, 1000);
    const a = go(await scheduler.admit('fast.test', 'p1'));
    const b = go(await scheduler.admit('fast.test', 'p2'));
    advance(1001);
    // Neither fresh (its attempts began over slotWaitMs ago) nor moving (none ended): postponed at once.
    wait(await scheduler.admit('fast.test', 'p3'));
    advance(20);
    a.done(); // an attempt ended: the destination is moving
    const c = go(await scheduler.admit('fast.test', 'p3'));
    const waiting = scheduler.admit('fast.test', 'p4'); // busy (2 in flight): waits for a slot
    let settled = false;
    void waiting.then(() => {
      settled = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(settled, false, 'p4 waits while both slots are taken');
    advance(20);
    b.done(); // hands its slot to p4
    const d = go(await waiting);
    assert.equal(scheduler.inFlight('fast.test'), 2, 'the slot passed over: still 2 in flight, never 3');
    c.done();
    d.done();
    assert.equal(scheduler.inFlight('fast.test'), 0);
  });

  test('a fresh destination (its first attempts just began): a backlog waits in process, not spread over seconds', async () => {
    const { scheduler } = bed({ maxConcurrency: 1 }, undefined, 1000);
    const a = go(await scheduler.admit('new.test', 'p1'));
    const waiting = scheduler.admit('new.test', 'p2');
    a.done();
    go(await waiting).done();
    assert.equal(scheduler.inFlight('new.test'), 0);
  });

  test('a waiter not served within slotWaitMs is postponed; no more waiters than maxConcurrency', async () => {
    let now = 1_000_000;
    const scheduler = new DestinationScheduler({
      limits: () => ({ maxConcurrency: 1 }),
      states: { of: () => undefined },
      now: () => now,
      random: () => 0,
      slotWaitMs: 30,
    });
    go(await scheduler.admit('slowish.test', 'p0')).done();
    const a = go(await scheduler.admit('slowish.test', 'p1'));
    now += 5;
    const first = scheduler.admit('slowish.test', 'p2'); // waits (one waiter allowed)
    const second = wait(await scheduler.admit('slowish.test', 'p3')); // a second waiter: postponed at once
    assert.equal(second.cause, 'busy');
    const timedOut = wait(await first); // nobody finished within 30 ms
    assert.equal(timedOut.cause, 'busy');
    a.done();
    assert.equal(scheduler.inFlight('slowish.test'), 0, 'a timed-out waiter takes no slot');
  });

  test('a rate of 60 a minute: one start a second, later parts get reserved starts', async () => {
    const { scheduler, advance } = bed({ maxConcurrency: 10, ratePerMinute: 60 });
    go(await scheduler.admit('paced.test', 'p1')).done();
    assert.equal(wait(await scheduler.admit('paced.test', 'p2')).delayMs, 1000);
    assert.equal(wait(await scheduler.admit('paced.test', 'p3')).delayMs, 2000);
    advance(999);
    assert.equal(wait(await scheduler.admit('paced.test', 'p3')).delayMs, 1001, 'its reservation holds');
    go(await scheduler.admit('paced.test', 'p2')).done();
    advance(1000);
    go(await scheduler.admit('paced.test', 'p3')).done();
    assert.equal(wait(await scheduler.admit('paced.test', 'p4')).delayMs, 1001);
  });

  test('backed off: every part waits until the backoff ends, then one probe at a time', async () => {
    const state: DestinationState = {
      destination: 'busy.test',
      failures: 1,
      until: new Date(1_000_000 + 5000).toISOString(),
      reason: '421 4.7.0 try later',
    };
    const { scheduler, advance } = bed({ maxConcurrency: 5 }, state);
    const w = wait(await scheduler.admit('busy.test', 'p1'));
    assert.equal(w.delayMs, 5000);
    assert.equal(w.backoff, state);
    go(await scheduler.admit('busy.test', 'p1', true)).done(); // an operator's retry now
    advance(5000);
    const probe = go(await scheduler.admit('busy.test', 'p2'));
    assert.match(wait(await scheduler.admit('busy.test', 'p3')).reason, /limit 1/);
    probe.done();
  });
});

describe('destinations and their rules', () => {
  test('names: the domain of an MX route, [host]:port of a transport; KV-safe keys', async () => {
    assert.equal(destinationOf({ kind: 'mx', domain: 'Gmail.COM.' } as Route), 'gmail.com');
    assert.equal(
      destinationOf({ kind: 'smtp', name: 't', host: 'relay.example', port: 587, lmtp: false }),
      '[relay.example]:587',
    );
    assert.match(destinationKey('[relay.example]:587'), /^[-_A-Za-z0-9]+$/);
  });

  test('rules: exact names, *.parent for subdomains only, first match wins', async () => {
    assert.ok(ruleMatches('gmail.com', 'GMAIL.com'));
    assert.ok(!ruleMatches('gmail.com', 'mail.gmail.com'));
    assert.ok(ruleMatches('*.outlook.com', 'eur.outlook.com'));
    assert.ok(!ruleMatches('*.outlook.com', 'outlook.com'));
    assert.ok(!ruleMatches('*.outlook.com', 'notoutlook.com'));
    const config = parseConfig(
      {
        hostname: 'mx.example.org',
        domains: { primary: 'example.org' },
        egress: {
          destinationConcurrency: 7,
          destinations: [
            { match: 'gmail.com', maxConcurrency: 3, ratePerMinute: 120 },
            { match: '*.outlook.com', ratePerMinute: 30 },
          ],
        },
      },
      'rules',
    );
    // A rule's maxConcurrency holds across replicas; the default is per process.
    assert.deepEqual(limitsFor('gmail.com', config.egress), {
      maxConcurrency: 3,
      ratePerMinute: 120,
      sharedConcurrency: true,
    });
    assert.deepEqual(limitsFor('x.outlook.com', config.egress), { maxConcurrency: 7, ratePerMinute: 30 });
    assert.deepEqual(limitsFor('example.net', config.egress), {
      maxConcurrency: 7,
      ratePerMinute: undefined,
    });
  });

  test('a bad rule fails at load, naming the key', async () => {
    assert.throws(
      () =>
        parseConfig(
          {
            hostname: 'h',
            domains: { primary: 'example.org' },
            egress: { destinations: [{ match: 'a b' }] },
          },
          'bad',
        ),
      /egress\.destinations\[0\]\.match: expected a destination name/,
    );
  });

  test('what backs a destination off: a 421, no session, a blown deadline; not a mailbox 4xx or any answer', async () => {
    const d = (reply: string) => ({ outcome: 'deferred' as const, reply });
    assert.match(destinationFailure([d('421 4.7.0 Too many connections')]) ?? '', /^421/);
    assert.ok(destinationFailure([d('451 4.4.1 (sluice) could not open an SMTP session: x')]));
    assert.ok(destinationFailure([d('451 4.4.2 (sluice) delivery attempt timed out: DNS after 1 s')]));
    assert.equal(destinationFailure([d('451 4.7.1 Greylisted')]), undefined);
    assert.equal(
      destinationFailure([d('421 4.7.0 x'), { outcome: 'delivered', reply: '250 ok' }]),
      undefined,
    );
    assert.equal(destinationFailure([]), undefined);
  });
});
