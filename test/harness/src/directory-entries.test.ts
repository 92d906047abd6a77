/** The generated directory: the forward rule, determinism, and the samples' coverage. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { directoryEntries, directoryForwards, forwardingIndex, sampleIndex } from './directory-entries.ts';

test('every 10th account has no forward, every 7th forwarding one has two', () => {
  assert.deepEqual(directoryForwards(0), []);
  assert.deepEqual(directoryForwards(30), []);
  assert.deepEqual(directoryForwards(1), ['u1@remote1.test']);
  assert.deepEqual(directoryForwards(53), ['u53@remote3.test']);
  assert.deepEqual(directoryForwards(14), ['u14@remote14.test', 'b14@backup.test']);
  assert.deepEqual(directoryForwards(70), []);
});

test('N entries with unique uids, the same on every call', () => {
  const a = directoryEntries(1000);
  assert.equal(a.length, 1000);
  assert.equal(new Set(a.map((e) => e.uid)).size, 1000);
  assert.deepEqual(a[21], { uid: 'u21', forwards: ['u21@remote21.test', 'b21@backup.test'] });
  assert.deepEqual(directoryEntries(1000), a);
  assert.equal(a.filter((e) => (e.forwards ?? []).length === 0).length, 100);
});

test('the sample covers the directory; forwardingIndex only names accounts with a forward', () => {
  for (const n of [10_000, 100_000]) {
    const seen = new Set(Array.from({ length: n }, (_, k) => sampleIndex(k, n)));
    assert.equal(seen.size, n, `sampleIndex is a permutation of 0..${n - 1}`);
    for (let k = 0; k < 5000; k++) {
      const i = forwardingIndex(k, n);
      assert.ok(i >= 0 && i < n);
      assert.notEqual(directoryForwards(i).length, 0, `index ${i}`);
    }
  }
});
