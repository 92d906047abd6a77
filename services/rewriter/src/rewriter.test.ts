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
import { Srs } from '@sluice/srs';
import {
  collectStage,
  type NatsTestServer,
  stageAcks,
  startNats,
  startServiceContext,
  waitUntil,
} from '@sluice/test-harness';
import { isExternalRoute, rewriteEnvelope } from './rewrite.ts';
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

const ours = new Set(['example.org', 'example.com']);
const srs = new Srs({ domain: 'srs.example.org', secrets: ['k1'] });
const at = new Date('2026-01-01T00:00:02.000Z');
const ctx = { instance: 'w1', now: () => at, ourDomains: ours, srs };

describe('rewriteEnvelope', () => {
  test('without SRS configured: appends the hop and changes nothing else', () => {
    const env = part();
    const { envelope, changes, srs: outcome } = rewriteEnvelope(env, { ...ctx, srs: undefined });
    assert.deepEqual(changes, []);
    assert.equal(outcome, 'off');
    assert.deepEqual(envelope, {
      ...env,
      hops: [...env.hops, { stage: 'rewriter', instance: 'w1', at: '2026-01-01T00:00:02.000Z' }],
    });
    assert.equal(env.hops.length, 1, 'the input is not mutated');
  });

  test('an outside forward gets an SRS0 sender that reverses to the original, kept in mailFrom.original', () => {
    const { envelope, changes, srs: outcome } = rewriteEnvelope(part(), ctx);
    assert.equal(outcome, 'rewritten');
    assert.match(
      envelope.mailFrom.address,
      /^SRS0=[^=]{4}=[A-Z2-7]{2}=sender\.test=sender@srs\.example\.org$/,
    );
    assert.equal(envelope.mailFrom.original, 'sender@sender.test');
    assert.deepEqual(srs.reverse(envelope.mailFrom.address, at), {
      ok: true,
      address: 'sender@sender.test',
      form: 'SRS0',
    });
    assert.deepEqual(changes, [`srs: sender@sender.test -> ${envelope.mailFrom.address}`]);
  });

  test('an SRS0 sender of another forwarder becomes SRS1 naming that forwarder', () => {
    const env = { ...part(), mailFrom: { address: 'SRS0=abcd=AB=orig.test=u@fwd.test' } };
    assert.match(
      rewriteEnvelope(env, ctx).envelope.mailFrom.address,
      /^SRS1=[^=]{4}=fwd\.test==abcd=AB=orig\.test=u@srs\.example\.org$/,
    );
  });

  test('left alone: the null sender, our own senders, our SRS addresses, mail to internal hosts', () => {
    const internal: Envelope['route'] = {
      kind: 'smtp',
      name: 'example.org',
      host: '10.0.0.5',
      port: 25,
      lmtp: true,
    };
    const cases: Envelope[] = [
      { ...part(), mailFrom: { address: '' } },
      { ...part(), mailFrom: { address: 'bob@Example.COM' } },
      { ...part(), mailFrom: { address: srs.forward('x@y.test', at).address } },
      { ...part(), route: internal },
    ];
    for (const env of cases) {
      const r = rewriteEnvelope(env, ctx);
      assert.equal(r.envelope.mailFrom.address, env.mailFrom.address, JSON.stringify(env.mailFrom));
      assert.equal(r.envelope.mailFrom.original, undefined);
      assert.equal(r.srs, 'not-needed');
    }
  });

  test('routes: MX and relay and foreign transports are outside; transports of our domains are not', () => {
    assert.equal(isExternalRoute({ kind: 'mx', domain: 'gmail.test' }, ours), true);
    assert.equal(
      isExternalRoute({ kind: 'smtp', name: 'relay', host: 'h', port: 25, lmtp: false }, ours),
      true,
    );
    assert.equal(
      isExternalRoute({ kind: 'smtp', name: 'forward.test', host: 'h', port: 25, lmtp: false }, ours),
      true,
    );
    assert.equal(
      isExternalRoute({ kind: 'smtp', name: 'example.com', host: 'h', port: 25, lmtp: false }, ours),
      false,
    );
    assert.equal(isExternalRoute(undefined, ours), false);
  });

  test('a sender too long for SRS gets the hash-only form, still at most 64 octets', () => {
    const env = { ...part(), mailFrom: { address: `${'a'.repeat(60)}@sender.test` } };
    const r = rewriteEnvelope(env, ctx);
    assert.equal(r.srs, 'hash-only');
    assert.ok(r.envelope.mailFrom.address.indexOf('@') <= 64);
    assert.match(r.changes[0]!, /hash-only/);
  });

  test('a quoted sender is rewritten unquoted and the SRS address quoted only if it must be', () => {
    const env = { ...part(), mailFrom: { address: '"john doe"@sender.test' } };
    const r = rewriteEnvelope(env, ctx);
    assert.match(
      r.envelope.mailFrom.address,
      /^"SRS0=[^=]{4}=[A-Z2-7]{2}=sender\.test=john doe"@srs\.example\.org$/,
    );
    const back = srs.reverse(r.envelope.mailFrom.address.slice(1).replace('"@', '@'), at);
    assert.deepEqual(back, { ok: true, address: 'john doe@sender.test', form: 'SRS0' });
    assert.equal(r.envelope.mailFrom.original, '"john doe"@sender.test');
  });

  test('internal X-Sluice-* headers are removed', () => {
    const env = {
      ...part(),
      prepend: [
        { name: 'X-Sluice-Debug', value: 'x', addedBy: 'filter' },
        { name: 'Authentication-Results', value: 'mx.example.org; spf=pass', addedBy: 'filter' },
      ],
    };
    const r = rewriteEnvelope(env, ctx);
    assert.deepEqual(
      r.envelope.prepend.map((h) => h.name),
      ['Authentication-Results'],
    );
    assert.ok(r.changes.includes('headers: removed 1 internal header(s)'));
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
