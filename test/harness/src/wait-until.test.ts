/** waitUntil: what counts as a value, and what a timeout says. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitUntil } from './wait-until.ts';

test('resolves with the first value, polling past undefined, null, false and throws', async () => {
  const answers: unknown[] = [undefined, null, false, new Error('not yet'), 0];
  let calls = 0;
  const v = await waitUntil('a zero', async () => {
    const a = answers[calls++];
    if (a instanceof Error) throw a;
    return a as number | undefined | null | false;
  });
  assert.equal(v, 0);
  assert.equal(calls, 5);
});

test('times out naming what it waited for, the described last state and the last probe error', async () => {
  let seen = 0;
  await assert.rejects(
    waitUntil(
      () => `the answer (last seen ${seen})`,
      () => {
        seen++;
        throw new Error('still broken');
      },
      { timeoutMs: 60, intervalMs: 10 },
    ),
    (err: Error) => {
      assert.match(err.message, /^timed out after 60ms waiting for the answer \(last seen \d+\)/);
      assert.match(err.message, /the last probe threw: still broken$/);
      return true;
    },
  );
  assert.ok(seen >= 2, `probed more than once (${seen})`);
});
