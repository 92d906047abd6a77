/**
 * The rewriter: the pure rewrite (today: the hop, no changes) and the stage
 * on a real nats-server, publishing to the deliver stream before it acks and
 * deduplicating a redelivered part by its Nats-Msg-Id.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Bus } from '@sluice/bus';
import { parseConfig } from '@sluice/config';
import {
  consumers,
  dedupIds,
  type Envelope,
  newQueueId,
  parseEnvelope,
  partIdOf,
  type SluiceEvent,
  sha256Hex,
  streams,
  subjects,
} from '@sluice/proto';
import type { RunningService, ServiceContext } from '@sluice/runtime';
import {
  collectStage,
  type NatsTestServer,
  stageAcks,
  startNats,
  startServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { rewriteEnvelope } from './rewrite.ts';
import { rewriterService } from './rewriter-service.ts';

const body = new TextEncoder().encode('Subject: x\r\n\r\nhi\r\n');

function part(id = newQueueId()): Envelope {
  return parseEnvelope({
    v: 1,
    id,
    partId: partIdOf(id, 'mx:forward.test', ['alice@forward.test']),
    receivedAt: '2026-01-01T00:00:00.000Z',
    source: 'mx',
    receivedBy: 'mx.example.org',
    client: { ip: '192.0.2.1', helo: 'client.test' },
    mailFrom: { address: 'sender@sender.test' },
    recipients: [{ address: 'alice@forward.test', original: 'info@example.org', via: ['info@example.org'] }],
    route: { kind: 'mx', domain: 'forward.test' },
    body: { kind: 'inline', size: body.length, sha256: sha256Hex(body) },
    hops: [{ stage: 'resolver', instance: 'r1', at: '2026-01-01T00:00:01.000Z' }],
  });
}

describe('rewriteEnvelope', () => {
  test('appends the hop and changes nothing else (yet)', () => {
    const env = part();
    const at = new Date('2026-01-01T00:00:02.000Z');
    const { envelope, changes } = rewriteEnvelope(env, { instance: 'w1', now: () => at });
    assert.deepEqual(changes, []);
    assert.deepEqual(envelope, {
      ...env,
      hops: [...env.hops, { stage: 'rewriter', instance: 'w1', at: '2026-01-01T00:00:02.000Z' }],
    });
    assert.equal(env.hops.length, 1, 'the input is not mutated');
  });
});

describe('the rewrite stage', () => {
  let nats: NatsTestServer;
  let bus: Bus;
  let ctx: ServiceContext;
  let events: SluiceEvent[];
  let delivered: Envelope[] = [];
  const running: RunningService[] = [];

  before(async () => {
    nats = await startNats();
    const config = parseConfig(
      { domains: { primary: 'example.org' }, nats: { servers: [nats.url] } },
      'rewriter-test',
    );
    ({ bus, ctx, events } = await startServiceContext(config, 'rewriter-test'));
    const collector = collectStage(bus, consumers.egress, 2);
    delivered = collector.envelopes;
    running.push(collector);
    running.push(await rewriterService.start(ctx));
  });

  after(async () => {
    for (const s of running.reverse()) await s.stop();
    await bus?.close();
    await nats?.stop();
  });

  const rewriterAcks = () => stageAcks(ctx.metrics, 'rewriter');

  test('a part goes to the deliver stream once, with its hop and a rewritten event, even if redelivered', async () => {
    const env = part();
    await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: dedupIds.rewrite(env.partId!) });
    const out = await waitUntil('the part on the deliver stream', () =>
      delivered.find((e) => e.partId === env.partId),
    );
    assert.deepEqual(
      out.hops.map((h) => [h.stage, h.instance]),
      [
        ['resolver', 'r1'],
        ['rewriter', 'rewriter-test'],
      ],
    );
    const ev = await waitUntil('the rewritten event', () =>
      events.find((e) => e.kind === 'rewritten' && e.partId === env.partId),
    );
    assert.deepEqual(ev.kind === 'rewritten' ? ev.changes : null, []);

    const jsm = await bus.js.jetstreamManager();
    const before = (await jsm.streams.info(streams.deliver.name)).state.last_seq;
    const acks = await rewriterAcks();
    await bus.publishEnvelope(subjects.rewrite, env, body, { msgId: `${env.partId}:rewrite-again` });
    await waitUntil('the rewriter to ack the copy', async () => (await rewriterAcks()) > acks);
    assert.equal(
      (await jsm.streams.info(streams.deliver.name)).state.last_seq,
      before,
      'no second publish stored',
    );
    assert.equal(delivered.filter((e) => e.partId === env.partId).length, 1);
  });
});
