/**
 * The in-memory count of parts postponed for a busy or paced destination
 * (postponed-parts.ts): counted until they come back or their return time is
 * well past, and summed over the fresh snapshots of every replica. The
 * end-to-end listing (two replicas, `sluice queue list`) is in
 * test/e2e/egress-queue.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PostponedParts, STALE_MS, sumPostponed } from './postponed-parts.ts';

test('counted per destination until back, or until well after their return time', () => {
  let now = 1_000_000;
  const parts = new PostponedParts(() => now);
  parts.note('p1', 'gmail.com', now + 1000);
  parts.note('p2', 'gmail.com', now + 3000);
  parts.note('p3', '[relay]:25', now + 500);
  assert.deepEqual(parts.counts(), {
    'gmail.com': { postponed: 2, until: new Date(now + 3000).toISOString() },
    '[relay]:25': { postponed: 1, until: new Date(now + 500).toISOString() },
  });
  parts.forget('p1'); // came back here
  parts.note('p2', 'gmail.com', now + 4000); // postponed again: counted once
  now += 6000; // p3 went to another replica long ago; p2 may still come back here
  assert.deepEqual(Object.keys(parts.counts()), ['gmail.com']);
  now += 4000;
  assert.deepEqual(parts.counts(), {});
});

test('the replicas snapshots are summed; a stale one (dead replica) is ignored', () => {
  const now = Date.parse('2026-01-01T00:01:00Z');
  const at = (ms: number) => new Date(ms).toISOString();
  const sum = sumPostponed(
    [
      { instance: 'a', at: at(now - 1000), destinations: { 'x.test': { postponed: 2, until: at(now + 5) } } },
      { instance: 'b', at: at(now - 2000), destinations: { 'x.test': { postponed: 3, until: at(now + 9) } } },
      {
        instance: 'dead',
        at: at(now - STALE_MS - 1),
        destinations: { 'y.test': { postponed: 7, until: at(now) } },
      },
    ],
    now,
  );
  assert.deepEqual([...sum.entries()], [['x.test', { postponed: 5, until: at(now + 9) }]]);
});
