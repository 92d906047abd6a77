import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SluiceEvent } from '@sluice/proto';
import { selectServices } from './services.ts';
import { renderTimeline } from './timeline.ts';

const base = { v: 1 as const, queueId: '01KAB0000000000000000000AA', instance: 'i1' };

test('timeline - events print in time order with offsets from the first', () => {
  const events: SluiceEvent[] = [
    {
      ...base,
      kind: 'delivery',
      stage: 'egress',
      partId: '01KAB0000000000000000000AA-1',
      at: '2026-11-23T03:00:00.250Z',
      recipient: 'a@example.net',
      outcome: 'delivered',
      host: '127.0.0.1:2526',
      reply: '250 ok',
      attempt: 1,
    },
    {
      ...base,
      kind: 'received',
      stage: 'ingress',
      at: '2026-11-23T03:00:00.000Z',
      client: '192.0.2.1',
      helo: 'c.example',
      mailFrom: 's@example.com',
      recipients: ['a@example.org'],
      size: 1234,
    },
  ];
  const lines = renderTimeline(events).split('\n');
  assert.equal(lines.length, 2);
  assert.match(
    lines[0]!,
    /\+0\.000s\s+ingress\s+received from 192\.0\.2\.1 \(helo c\.example\) MAIL FROM:<s@example\.com>/,
  );
  assert.match(
    lines[1]!,
    /\+0\.250s\s+egress\s+01KAB0000000000000000000AA-1\s+delivered a@example\.net at 127\.0\.0\.1:2526/,
  );
  assert.match(renderTimeline([]), /no events recorded/);
});

test('services - names select services; a typo lists the valid names', () => {
  assert.deepEqual(
    selectServices(['filter', 'ingress', 'filter']).map((s) => s.name),
    ['filter', 'ingress'],
  );
  assert.equal(selectServices([]).length, 6);
  assert.throws(
    () => selectServices(['ingres']),
    /unknown service ingres: choose from ingress, submission, filter, resolver, rewriter, egress/,
  );
});
