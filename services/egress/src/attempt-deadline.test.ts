/**
 * The whole-attempt deadline's two halves without a network: a step that
 * outruns it is abandoned with a DeadlineError naming the step, and what the
 * step yields afterwards (a session opened too late) is handed back, never lost.
 * The cut of a transaction in progress is tested end to end
 * (test/e2e/egress-queue.test.ts: a server that never answers the final dot).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { beforeDeadline, DeadlineError, withinDeadline } from './attempt-deadline.ts';

test('a step that outruns the deadline is abandoned; its late result is discarded, not lost', async () => {
  let finish!: (v: string) => void;
  const slow = new Promise<string>((resolve) => {
    finish = resolve;
  });
  const discarded: string[] = [];
  const outcome = await withinDeadline(20, (deadline) =>
    beforeDeadline(deadline, 'opening a session with mx.test', slow, (late) => discarded.push(late)).catch(
      (err: unknown) => err,
    ),
  );
  assert.ok(outcome instanceof DeadlineError);
  assert.match(
    outcome.reply,
    /^451 4\.4\.2 \(sluice\) delivery attempt timed out: opening a session with mx\.test after 0 s$/,
  );
  finish('session');
  await slow;
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(discarded, ['session']);
});

test('a step that finishes in time passes its result and errors through', async () => {
  const value = await withinDeadline(5000, (d) => beforeDeadline(d, 'DNS', Promise.resolve(42)));
  assert.equal(value, 42);
  await assert.rejects(
    withinDeadline(5000, (d) => beforeDeadline(d, 'DNS', Promise.reject(new Error('SERVFAIL')))),
    /SERVFAIL/,
  );
});
