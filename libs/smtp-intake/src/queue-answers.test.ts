import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BusPublishError, RpcError } from '@sluice/bus';
import { filterOutcome, publishFailure } from './queue-answers.ts';

const reply = (verdict: object, extra: object = {}) => ({
  data: new TextEncoder().encode(
    JSON.stringify({ v: 1, verdict: { score: 0, rules: [], ...verdict }, ...extra }),
  ),
});

describe('filterOutcome', () => {
  test('accept and tag pass the filter reply on, headers included', () => {
    const header = { name: 'Authentication-Results', value: 'mx.example.org; spf=pass', addedBy: 'filter' };
    for (const action of ['accept', 'tag']) {
      const o = filterOutcome(reply({ action }, { prepend: [header] }));
      assert.equal(o.kind, 'accept');
      if (o.kind === 'accept') assert.deepEqual(o.reply.prepend, [header]);
    }
  });

  test('reject: 550 5.7.1 with the reason made reply-safe', () => {
    const o = filterOutcome(reply({ action: 'reject', reason: 'spam\r\n250 ok' }));
    assert.equal(o.kind, 'refuse');
    if (o.kind === 'refuse') assert.equal(o.error.line, '550 5.7.1 Message rejected: spam 250 ok');
    const plain = filterOutcome(reply({ action: 'reject' }));
    if (plain.kind === 'refuse') assert.equal(plain.error.line, '550 5.7.1 Message rejected');
  });

  test('tempfail and greylist: 451 4.7.1', () => {
    for (const action of ['tempfail', 'greylist']) {
      const o = filterOutcome(reply({ action }));
      assert.equal(o.kind, 'refuse');
      if (o.kind === 'refuse') assert.match(o.error.line, /^451 4\.7\.1 /);
    }
  });

  test("greylist says so; tempfail carries the filter's reason; removeHeaders are passed on", () => {
    const g = filterOutcome(reply({ action: 'greylist' }));
    if (g.kind === 'refuse') assert.equal(g.error.line, '451 4.7.1 Greylisted, please try again later');
    const t = filterOutcome(
      reply({ action: 'tempfail', reason: 'Sender authentication temporarily unavailable (DNS)' }),
    );
    if (t.kind === 'refuse') {
      assert.equal(
        t.error.line,
        '451 4.7.1 Message deferred: Sender authentication temporarily unavailable (DNS)',
      );
    }
    const removeHeaders = [{ name: 'Authentication-Results', index: 0 }];
    const a = filterOutcome(reply({ action: 'accept' }, { removeHeaders }));
    assert.ok(a.kind === 'accept' && a.reply.removeHeaders?.[0]?.index === 0);
  });

  test('no answer, a failed filter or an answer we cannot read: 451 4.3.0, never accept', () => {
    for (const answer of [
      { error: new Error('no reply within 30000 ms') },
      { data: new TextEncoder().encode('{') },
      { data: new TextEncoder().encode(JSON.stringify({ v: 1, error: 'boom' })) },
      reply({ action: 'maybe' }),
    ]) {
      const o = filterOutcome(answer);
      assert.equal(o.kind, 'refuse');
      if (o.kind === 'refuse') assert.match(o.error.line, /^451 4\.3\.0 /);
    }
  });
});

describe('publishFailure', () => {
  test('a full stream is 452 4.3.1; anything else without a PubAck is 451 4.3.0', () => {
    assert.match(publishFailure(new BusPublishError('full', { full: true })).line, /^452 4\.3\.1 /);
    assert.match(publishFailure(new BusPublishError('timeout', { full: false })).line, /^451 4\.3\.0 /);
    assert.match(publishFailure(new Error('other')).line, /^451 4\.3\.0 /);
  });
});

test('a filter busy on both asks: 451 4.3.2, reason filter-busy; another request failure stays 451 4.3.0', () => {
  const busy = filterOutcome({
    error: new RpcError('busy', { code: 'busy', subject: 'x' }),
  });
  assert.equal(busy.kind, 'refuse');
  assert.ok(busy.kind === 'refuse');
  assert.equal(busy.reason, 'filter-busy');
  assert.equal(busy.error.line, '451 4.3.2 Content filter busy, try again later');
  const timeout = filterOutcome({ error: new RpcError('late', { code: 'timeout', subject: 'x' }) });
  assert.ok(timeout.kind === 'refuse');
  assert.equal(timeout.reason, 'filter-unavailable');
  assert.match(timeout.error.line, /^451 4\.3\.0 /);
});
